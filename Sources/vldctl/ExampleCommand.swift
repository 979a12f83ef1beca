// ExampleCommand.swift: `vldctl example [KIND]`, an annotated manifest that validates as printed.

import Foundation

enum ExampleCommand {
    static let usage = """
        usage: vldctl example [KIND]

        Prints an annotated example manifest of the experiment kind (default: train). Manifests
        accept // line comments, so the output can be saved and run as it is:

          vldctl example train > my.json && vldctl validate my.json && vldctl run my.json

        Kinds: train (training with a task mixture, optionally a grid of trials), distill (a
        pipeline: a teacher trained in one stage, students distilled from it in the next), phase (a
        pipeline: a width ladder on the world task, truth steering, and the phase analysis with
        its dashboard).
        The shipped study manifests are in examples/ (vld-quick.json, vld-knowledge.json, ...).
        """

    static let train = """
        // vld experiment manifest (kind "train"). Every key except name and task is optional;
        // the values shown are the defaults unless the comment says otherwise. Unknown keys are errors.
        {
          "name": "cyc-vs-base",          // required; [A-Za-z0-9._-]{1,64}; names the output directory
          "kind": "train",                // train, distill, prm, tts, phase or steer
          "seed": 1,                      // model initialisation and data; 0...2147483647
          "priority": 0,                  // -100...100, higher runs first in the daemon
          "resources": {
            "threads": 2,                 // worker threads (default: the machine's cores)
            "memoryMiB": 4096             // checked against an estimate of the training memory
          },
          // One task, or a list of tasks with weights (a mixture). Types:
          //   igsm           iGSM-lite multi-step modular arithmetic (reasoning; specs/vld.md 6.3)
          //                  maxOps 1...15 (training ops 1..maxOps), maskQuestion true,
          //                  maxEdges (sentences per problem, default 12), maxWords (length cap),
          //                  modulus 23 (2...23), render "text", "symbolic" or "compact", stepSymbols "random"
          //                  or "ordered", split "template" or "none",
          //                  curriculum {"fromMaxOps": 1, "documents": N} (op range grows over N),
          //                  evalProblems 100 per op count, evalOps [maxOps, maxOps+5, maxOps+6]
          //   chain          k-hop variable chains mod p (reasoning whose difficulty is k)
          //                  format "direct" or "cot", syntax "compact" ("x 4 ;") or "equals",
          //                  cotSteps "trace" (back to the constant, then compute up) or "forward",
          //                  modulus 11, statements 10, minK 1, maxK 4, queries 1 (direct: answers
          //                  per problem), derivedShare 0.667, recallDocuments 0 (recall first),
          //                  evalProblems 100 per k, evalK [minK...maxK+2]
          //   bios           bioS-lite biographies (knowledge bits; specs/vld.md 6.2 K2)
          //                  people, firstNames, middleNames, lastNames, exposures, attributes, evalNames
          //   random-tokens  memorising a fixed IID token stream (specs/vld.md 6.2 K1)
          //                  symbols (vocabulary n), tokens (stream length; windows of model.context)
          "task": { "type": "igsm", "maxOps": 3, "maxEdges": 8, "maxWords": 280, "evalProblems": 64 },
          "model": {
            "arch": "gpt2",               // gpt2 or llama
            "dModel": 64,
            "layers": 2,                  // physical blocks (parameters)
            "heads": 4,                   // kvHeads (llama, default heads), ffnHidden (default 4 dModel for gpt2)
            "context": 280,               // must hold the longest document of the task (validate says how long)
            "schedule": "base",           // base, seq(k), cyc(k), inv(k), mcyc(k), alt, part(a,b,k), [0,1,1,0]
            "tiedEmbeddings": true        // default: true for gpt2, false for llama
          },
          "train": {
            "steps": 300,
            "batch": 16,
            "lr": 0.001,                  // peak; linear warm-up, then cosine decay to minLr (default lr/10)
            "warmup": 30,                 // default min(50, steps/10)
            "weightDecay": 0.1,
            "clip": 1.0,                  // global gradient-norm clip, 0 disables
            "evalEvery": 100,             // default steps/10; also at the last step
            "checkpointEvery": 100        // default evalEvery
          },
          // Optional: "init": a checkpoint the weights start from (fine-tuning, continued
          // pretraining): "@stage" in a pipeline (vldctl example distill), "job:<id>" (a finished
          // vldd job of yours) or an absolute path (vldd: under its checkpoint_roots). The model must
          // match up to its schedule, so a base model can seed a looped one.
          // Optional: trials are the Cartesian product of these lists (keys are dotted paths; an
          // object value is merged into the object at its path, e.g. {"layers": 4, "schedule": "base"}).
          "grid": {
            "model.schedule": ["base", "cyc(1)"],
            "seed": [1, 2]
          }
        }
        """

    static let distill = """
        // vld pipeline manifest: a teacher, then students distilled from it (kind "distill").
        // "stages" holds named manifests; each inherits name, seed, priority and resources and has
        // its own kind and grid. A stage runs when the stages it needs have finished; "@teacher"
        // (a checkpoint reference) is such a need. `vldctl run` and vldd run stages in order.
        {
          "name": "distill-demo",
          "seed": 1,
          "resources": {"threads": 2},
          "stages": {
            "teacher": {
              "task": {"type": "bios", "people": 100, "exposures": 40},
              "model": {"dModel": 64, "layers": 4, "heads": 4, "context": 96},
              "train": {"steps": 800, "batch": 16, "lr": 0.003}
            },
            "student": {
              "kind": "distill",
              "teacher": "@teacher",      // "@stage", "@stage/<k>" (trial k of a grid), "job:<id>" or a path
              // The student: task, model and train as in `vldctl example train`. The tasks must give
              // the teacher's vocabulary (the same task mixture does).
              "task": {"type": "bios", "people": 100, "exposures": 40},
              "model": {"dModel": 32, "layers": 2, "heads": 4, "context": 96},
              "train": {"steps": 800, "batch": 16, "lr": 0.003},
              // "distill": the loss, default {"loss": "kd_forward", "temperature": 2, "lambda": 0.5}.
              // ce (the CE-only control), kd_forward and kd_reverse (temperature 2, lambda 0.5:
              // (1-lambda) CE + lambda T^2 KL), jsd (beta 0.5; 0 is forward KL, 1 reverse KL),
              // topk (k 16: CE on the teacher's top k, renormalised), sampled (k 16: k ids drawn
              // from the teacher each step), logit_mse (centred logits), seqkd (CE on the teacher's
              // continuations; "decoding" greedy or sampled). "onPolicy": p trains that share of the
              // steps on the student's own samples. "cacheTeacher": "topk(K)" runs the teacher once
              // over the training stream and keeps its top K logits, shared by the students of the
              // same seed (not with seqkd or onPolicy). The loss counts only the positions the task scores. Every distillation study carries its CE-only control of
              // the same budget; a grid value that is an object is merged into "distill", so the
              // grid below sets it whole.
              "grid": {"distill": [{"loss": "ce"}, {"loss": "kd_forward", "temperature": 2, "lambda": 0.5}]}
            }
          }
        }
        """

    static let phase = """
        // vld pipeline manifest: a width ladder on the synthetic world with misconceptions, truth
        // steering on its models, and the capability-phase analysis (kinds "steer" and "phase";
        // specs/phase.md). The phase trial's report.html is the dashboard. About 2 minutes on 1 core.
        {
          "name": "phase-demo",
          "seed": 1,
          "resources": {"threads": 2},
          "stages": {
            "ladder": {
              // The world: entities with facts; among the popular ones misconceptions written
              // fMis : fTrue against the truth; 2-hop compositions after their premise.
              "task": {"type": "world", "entities": 200, "popular": 40, "fMis": 3, "fTrue": 1, "evalItems": 200},
              "model": {"arch": "llama", "dModel": 16, "layers": 2, "heads": 4, "context": 48},
              "train": {"steps": 1500, "batch": 32, "lr": 0.002, "warmup": 100, "evalEvery": 500},
              // model.head may be "rank(r)" or "wide(k)", model.outputMultiplier a number or "muP(64)".
              "grid": {"model.dModel": [16, 32, 64], "seed": [1, 2]}
            },
            "steer": {
              "kind": "steer",
              "models": ["@ladder/*"],    // "@stage/*": every trial of a stage written before
              "task": {"type": "world", "entities": 200, "popular": 40},
              // method diffMeans, pairedDiffMeans, pca or logistic; site resid_pre, attn_out, mlp_out or
              // resid_post; scale raw, unit, sigma (ITI) or residNorm; mode add or projectOut;
              // positions all, afterPrompt (CAA) or front(<tokens>) (ActAdd); "vectors": a saved
              // vectors.safetensors to apply instead of building directions.
              "steer": {"method": "diffMeans", "site": "resid_post", "scale": "sigma", "alphas": [-4, -1, 0, 1, 4], "items": 100}
            },
            "phase": {
              "kind": "phase",
              "ladders": {"raw": ["@ladder/*"]},   // families of checkpoints; at least 3 points each
              "orderBy": "dModel",                 // dModel, layers, params, step or tokens
              "steering": "@steer",                // optional: a steer trial shown in the dashboard
              "task": {"type": "world", "entities": 200, "popular": 40},
              // truth T_MC2 or T_MC1; gamma undefined where R moves less than epsilon; TAX and BONUS
              // outside the dead band with intervals excluding 0; resamples (bootstrap) and
              // permutations (the width-normalization null).
              "phase": {"items": 200, "truth": "T_MC2", "epsilon": 0.005, "band": 0.1, "resamples": 1000, "permutations": 10000}
            }
          }
        }
        """

    static func run(_ args: [String]) throws -> Int32 {
        if args.contains("-h") || args.contains("--help") { print(usage); return 0 }
        let p = try CLI.parse(args, options: [], flags: [])
        let kind = p.positional.first ?? "train"
        guard p.positional.count <= 1 else { throw UsageError(message: "example takes at most one kind\n\(usage)") }
        let examples = ["train": train, "distill": distill, "phase": phase]
        guard let text = examples[kind] else {
            throw UsageError(message: "no example for kind '\(kind)'; kinds: train, distill, phase")
        }
        print(text)
        return 0
    }
}
