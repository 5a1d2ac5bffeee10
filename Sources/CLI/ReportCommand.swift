import Foundation
import Audit
import Workflows

let reportCommand = Command(
    path: ["report"],
    summary: "Write an HTML report of the store's features: a head's errors with their images, a map, finetuning beside it.",
    usage: "report [--head NAME] [--backbone B] [--finetuned FILE.pth] [--out DIR] [--store PATH] [--json]",
    discussion: """
    Writes DIR/index.html (default cache/report) and its images beside it:
      - the head's evaluation on the validation split (accuracy, precision/recall, confusion matrix);
      - every misclassified validation image (most confident mistakes first) with its true label,
        the prediction and the head's probability of it;
      - a 2-D map of the embeddings (the first two principal components), coloured by class, with
        the misclassified images ringed;
      - the head over cached features beside a finetuned network (validation accuracy, wall
        time) when --finetuned names weights written by `probe finetune` (it reads their
        OUT-summary.json);
      - the evaluation protocols (`probe eval`): linear probe with a C sweep, k-NN, few-shot,
        calibration, as one table;
      - the data audit (`probe audit`): duplicates, train/val leakage, outliers and likely label
        errors, with the first findings' images here and every finding in DIR/audit/index.html.
    Without --head it uses the head named 'tutorial', or else trains the tutorial's head for the
    report without saving it. The store is opened read-only. Only files probe wrote into DIR
    (listed in DIR/.probe-report) are ever replaced: a folder of other files is safe.

    EXAMPLES:
      probe report
      probe train --name lbfgs --solver lbfgs && probe report --head lbfgs --out cache/report-lbfgs
      probe finetune data/hymenoptera_data && probe report --finetuned hymenoptera_data-resnet18-finetuned.pth
    """,
    options: [
        Option("--head", "NAME", "The head to report on (default: 'tutorial' if saved, else the tutorial's head trained now)."),
        storeBackboneOption,
        Option("--finetuned", "FILE", "Weights written by `probe finetune`: shown beside the head (reads FILE's -summary.json)."),
        Option("--out", "DIR", "Where the report goes (default cache/report)."),
        Option("--no-audit", nil, "Leave out the data audit."),
        Option("--no-protocols", nil, "Leave out the evaluation protocols."),
        Option("--seed", "N", "Seed of the head trained for the report when no head is named (default 0)."),
        storeOption,
        Option("--json", nil, "Print what the report found as JSON."),
        threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        var o = ReportOptions()
        o.storePath = storePath(args)
        o.headName = args.string("--head")
        o.backbone = args.string("--backbone")
        o.finetunedWeights = args.string("--finetuned")
        if let out = args.string("--out") { o.directory = out }
        o.seed = UInt64(try args.int("--seed", default: 0, range: 0...Int.max))
        o.audit = !args.flag("--no-audit")
        o.protocols = !args.flag("--no-protocols")
        if let f = o.finetunedWeights, !FileManager.default.fileExists(atPath: f) {
            throw UsageError("probe report: --finetuned \(f): no such file (give the .pth that `probe finetune` wrote)")
        }
        let r = try writeProbeReport(o)
        if args.flag("--json") {
            try printJSON(ReportJSON(report: r.path, head: r.headName, val_acc: r.validationAccuracy,
                                     misclassified: r.misclassified,
                                     finetuned_val_acc: r.finetuned?.bestValidationAccuracy, finetuned_seconds: r.finetuned?.seconds,
                                     audit: r.audit, protocols: r.protocols))
        } else {
            print("head '\(r.headName)': validation accuracy \(r.validationAccuracy.map { String(format: "%.4f", $0) } ?? "n/a"), "
                  + "\(r.misclassified.count) misclassified")
            if let f = r.finetuned {
                print("finetuned \(f.architecture): best validation accuracy \(f.bestValidationAccuracy.map { String(format: "%.4f", $0) } ?? "n/a") in \(String(format: "%.1f", f.seconds)) s")
            }
            if let a = r.audit {
                print("audit: \(a.labelIssues.count) likely label errors, \(a.nearDuplicates.count) near-duplicate pairs (\(a.leaks) across splits), "
                      + "\(a.exactDuplicates.count) exact-duplicate groups, \(a.outliers.count) outliers listed")
            }
            print("report: \(r.path)")
        }
        return 0
    }
)

struct ReportJSON: Encodable {
    var report: String, head: String, val_acc: Double?
    var misclassified: [Misclassification]
    var finetuned_val_acc: Double?, finetuned_seconds: Double?
    var audit: AuditResult?
    var protocols: EvalProtocolReport?
}
