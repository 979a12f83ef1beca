// swift-tools-version:6.0
// vld: a research lab in a box. See README.md and DESIGN.md (in ../shared) for the layout.
import PackageDescription

// Release builds of the numeric modules use -Ounchecked (10-20% faster training with vld-bench):
// their hot loops are covered by the naive-reference and gradient-check tests, which run in the
// same configuration, and the checks that guard memory against caller mistakes use `require`
// (VLDTensor), which -Ounchecked keeps. Sizes from files are bounded before any arithmetic
// (ModelConfig.validate, LayerSchedule.maxApplications, Safetensors.decode).
let fastMath: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let testable: [SwiftSetting] = [.unsafeFlags(["-enable-testing"])]

let package = Package(
    name: "vld",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vldd", targets: ["vldd"]),
        .executable(name: "vldctl", targets: ["vldctl"]),
        .executable(name: "vld-bench", targets: ["vld-bench"]),
        .library(name: "VLDModel", targets: ["VLDModel"]),
        .library(name: "VLDExperiments", targets: ["VLDExperiments"]),
    ],
    targets: [
        // System C libraries: one tiny module each (module.modulemap + shim.h).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CLinux"),

        // The engine's SIMD kernels, built per instruction set and chosen at run time (CPUID).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"], .when(configuration: .release))]),
        .target(name: "VLDTensor", dependencies: ["COpenBLAS", "CKernels"], swiftSettings: fastMath),
        .target(name: "VLDModel", dependencies: ["VLDTensor", "VLDJSON", "CLinux"], swiftSettings: fastMath),
        // -enable-testing: their tests reach internals (the iGSM graph, the chart axes) in the
        // release configuration the suite runs in; neither module has hot loops.
        .target(name: "VLDTasks", dependencies: ["VLDJSON"], swiftSettings: testable),
        // The project's one JSON value type, reader and writer, and the terminal-safe text it quotes with.
        .target(name: "VLDJSON", swiftSettings: testable),
        .target(name: "VLDExperiments", dependencies: ["VLDJSON", "VLDModel", "VLDTasks"], swiftSettings: testable),
        .target(name: "VLDStore", dependencies: ["CSQLite"], swiftSettings: testable),
        .target(
            name: "VLDCore", dependencies: ["VLDStore", "VLDExperiments", "VLDJSON", "CLinux", "CSystemd"],
            swiftSettings: testable
        ),

        .executableTarget(name: "vldd", dependencies: ["VLDCore", "VLDModel"]),
        .executableTarget(
            name: "vldctl", dependencies: ["VLDCore", "VLDExperiments", "VLDModel", "VLDTasks", "VLDJSON"]),
        .executableTarget(name: "vld-bench", dependencies: ["VLDModel", "VLDExperiments", "VLDJSON"]),

        .testTarget(name: "VLDTensorTests", dependencies: ["VLDTensor"]),
        .testTarget(name: "VLDModelTests", dependencies: ["VLDModel", "VLDTasks"], exclude: ["Fixtures"]),
        .testTarget(name: "VLDTasksTests", dependencies: ["VLDTasks"]),
        .testTarget(name: "VLDExperimentsTests", dependencies: ["VLDExperiments", "VLDModel", "VLDTensor"]),
        .testTarget(name: "VLDStoreTests", dependencies: ["VLDStore"], exclude: ["Fixtures"]),
        .testTarget(name: "VLDCoreTests", dependencies: ["VLDCore"]),
        .testTarget(name: "EndToEndTests", dependencies: ["VLDModel"]),
    ],
    swiftLanguageModes: [.v5]
)
