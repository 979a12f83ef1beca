// Exports.swift: modules every user of VLDExperiments also sees (the JSON value type of manifests,
// results and events; DisplayText for untrusted text).

@_exported import VLDJSON
