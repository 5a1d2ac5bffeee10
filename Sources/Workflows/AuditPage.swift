import Foundation
import Audit
import Vision
import Report
import OutputFiles

/// Writes the audit's findings as `DIR/index.html` with a thumbnail of every image shown, in
/// `DIR/audit-thumbnails/` (PNG, at most `thumbnailSize` pixels a side, named by content).
///
/// Ownership: `DIR/.probe-audit` lists the files an audit page wrote there. A file the page would
/// write that exists and is not listed is never replaced (`OwnedFolderError.notOurs`, before anything is
/// written), so an existing folder of other files is safe. Files of an earlier page that the new one
/// no longer uses are removed (only listed ones). Every file is written atomically (OutputFiles), the
/// list first with the union of old and new names (a kill leaves no unlisted file of ours), the page
/// last but for the final list.
/// Returns the path of index.html.
@discardableResult
public func writeAuditPage(_ result: AuditResult, to dir: String, perSection: Int = 40, thumbnailSize: Int = 160) throws -> String {
    var folder = try OwnedFolder(dir, manifest: ".probe-audit", header: "# files written by probe audit --html (the rest of this folder is never touched)")
    let thumbDir = "audit-thumbnails"

    // The samples shown, each thumbnail once (by content).
    let page = AuditPageContent(result: result, perSection: perSection)
    var thumbs: [String: String] = [:]   // sha256 -> relative file name
    for s in page.shownSamples where thumbs[s.sha256] == nil {
        thumbs[s.sha256] = thumbDir + "/" + String(s.sha256.prefix(16)) + ".png"
    }
    try folder.claim(Set(thumbs.values).union(["index.html", thumbDir]))   // refuses before writing anything
    if !FileManager.default.fileExists(atPath: dir + "/" + thumbDir) {
        try FileManager.default.createDirectory(atPath: dir + "/" + thumbDir, withIntermediateDirectories: false)
    }
    var written = Set<String>()
    for s in page.shownSamples {
        guard let name = thumbs[s.sha256], !written.contains(name) else { continue }
        guard let image = try? ImageDecoder.decode(path: s.path) else { continue }   // moved or unreadable: a note instead
        let scale = Double(thumbnailSize) / Double(max(image.width, image.height))
        let t = scale < 1 ? Transforms.resize(image, width: max(1, Int((Double(image.width) * scale).rounded())),
                                              height: max(1, Int((Double(image.height) * scale).rounded()))) : image
        try writeFileAtomically(try PNGWriter.encode(t), to: dir + "/" + name)
        written.insert(name)
    }
    let html = page.render(thumbnails: thumbs.filter { written.contains($0.value) })
    try writeFileAtomically(Array(html.utf8), to: dir + "/index.html")
    // Files of an earlier page no longer used (only ones we listed).
    try folder.removeUnused(under: thumbDir + "/", keep: written)
    return dir + "/index.html"
}

/// The findings a page shows (the first `perSection` of each kind).
struct AuditPageContent {
    let result: AuditResult
    let perSection: Int

    var labelIssues: ArraySlice<LabelIssue> { result.labelIssues.prefix(perSection) }
    var nearDuplicates: [NearDuplicate] {
        Array((result.nearDuplicates.filter(\.crossSplit) + result.nearDuplicates.filter { !$0.crossSplit }).prefix(perSection))
    }
    var exactDuplicates: ArraySlice<ExactDuplicate> { result.exactDuplicates.prefix(perSection) }
    var outliers: ArraySlice<Outlier> { result.outliers.prefix(perSection) }

    var shownSamples: [AuditSample] {
        labelIssues.map(\.sample) + nearDuplicates.flatMap { [$0.first, $0.second] }
            + exactDuplicates.compactMap { $0.samples.first } + outliers.map(\.sample)
    }

    func render(thumbnails: [String: String]) -> String {
        func card(_ s: AuditSample, _ lines: [String], bad: Bool = false) -> String {
            let img = thumbnails[s.sha256].map { "<img src=\"\(htmlEscape($0))\" alt=\"\(htmlEscape(s.path))\">" }
                ?? "<div class=\"missing\">image not readable</div>"
            let text = lines.map { "<div>\(htmlEscape($0))</div>" }.joined()
            return "<div class=\"card\(bad ? " bad" : "")\">\(img)\(text)<div class=\"path\" title=\"\(htmlEscape(s.path))\">\(htmlEscape(shortPath(s.path)))</div></div>"
        }
        var html = HTMLReport(title: "probe audit")
        html.raw("""
            <style>.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ccc;padding:6px;width:172px;font-size:12px;background:#fafafa}
            .card img{display:block;max-width:160px;max-height:160px;margin:0 auto 4px}.card.bad{border-color:#d33;background:#fff3f3}
            .path{color:#666;word-break:break-all}.pair{display:flex;gap:6px;align-items:center;border:1px solid #ddd;padding:6px;margin:6px 0}
            .pair.bad{border-color:#d33;background:#fff3f3}.missing{width:160px;height:60px;color:#999;text-align:center}</style>
            """)
        let c = result.counts
        var source = ""
        if let b = result.source["backbone"] { source = " over \(b) features (\(result.source["dimension"] ?? "?")-d, weights \(result.source["weightsSHA256"]?.prefix(12) ?? "?"))" }
        if let st = result.source["store"] { source += " from \(st)" }
        html.paragraph("\(c.samples) samples, \(c.images) distinct images, \(c.imagesWithFeatures) with features\(source).")
        html.table(header: ["finding", "count"], rows: result.countRows())

        html.heading("Likely label errors")
        if let l = result.labelSummary {
            html.paragraph("Out-of-fold probabilities of \(l.folds)-fold stratified cross-validated L-BFGS logistic regressions (C \(l.C), seed \(l.seed)); "
                + "out-of-fold accuracy \(String(format: "%.4f", l.outOfFoldAccuracy)). A sample is a candidate when its given label's probability is "
                + "below that class's average self-confidence (" + zip(l.classes, l.thresholds).map { "\($0) \($1.map { String(format: "%.3f", $0) } ?? "-")" }.joined(separator: ", ")
                + "). Ranked by \(l.ranking.rawValue), lowest first; \(l.candidates) candidates, the first \(labelIssues.count) shown.")
            html.raw("<div class=\"cards\">" + labelIssues.map { i in
                card(i.sample, ["#\(i.rank) labelled \(i.sample.label) (\(i.sample.split ?? "-"))",
                                String(format: "p(%@) %.3g < %.3f", i.sample.label, i.givenProbability, i.threshold),
                                String(format: "suggested: %@ %.3f", i.suggested, i.suggestedProbability)])
            }.joined() + "</div>")
        } else {
            html.paragraph("Not checked (fewer than 2 classes, or switched off).")
        }

        html.heading("Near duplicates")
        html.paragraph("Pairs of distinct images with cosine similarity of their view-0 features >= \(result.options.nearDuplicateThreshold); "
            + "pairs across splits (train/val leakage) first, framed red. \(result.nearDuplicates.count) pairs, \(result.leaks) across splits"
            + (result.nearDuplicatesTruncated ? " (truncated to the most similar)" : "") + ".")
        if nearDuplicates.isEmpty { html.paragraph("None found.") }
        for p in nearDuplicates {
            html.raw("<div class=\"pair\(p.crossSplit ? " bad" : "")\">"
                + card(p.first, ["\(p.first.split ?? "-")/\(p.first.label)"]) + card(p.second, ["\(p.second.split ?? "-")/\(p.second.label)"])
                + "<div>" + htmlEscape(String(format: "cosine %.4f, %@%@", p.similarity, p.relation, p.labelsDiffer ? ", labels differ" : "")) + "</div></div>")
        }

        html.heading("Exact duplicates")
        html.paragraph("The same bytes (sha256) under several paths; groups with conflicting labels or splits first, framed red.")
        if exactDuplicates.isEmpty { html.paragraph("None found.") }
        for g in exactDuplicates {
            let bad = g.conflictingLabels || g.conflictingSplits
            html.raw("<div class=\"pair\(bad ? " bad" : "")\">" + card(g.samples[0], [String(g.sha256.prefix(12))])
                + "<div>" + g.samples.map { htmlEscape("\($0.split ?? "-")/\($0.label): \($0.path)") }.joined(separator: "<br>") + "</div></div>")
        }

        html.heading("Outliers")
        html.paragraph("Images farthest from their \(result.options.outlierNeighbours) nearest neighbours (mean cosine distance), farthest first.")
        html.raw("<div class=\"cards\">" + outliers.map { o in
            card(o.sample, ["#\(o.rank) \(o.sample.split ?? "-")/\(o.sample.label)", String(format: "mean distance %.4f", o.meanDistance)])
        }.joined() + "</div>")
        return html.render()
    }
}

/// The last three components of a path.
private func shortPath(_ p: String) -> String {
    let parts = p.split(separator: "/")
    return parts.count <= 3 ? p : "…/" + parts.suffix(3).joined(separator: "/")
}
