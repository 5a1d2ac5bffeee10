/// Escapes text for HTML.
public func htmlEscape(_ s: String) -> String {
    var out = ""
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(ch)
        }
    }
    return out
}

/// A small self-contained HTML report: a title, sections of paragraphs, tables, images and preformatted text.
public struct HTMLReport {
    private var body = ""
    public let title: String

    public init(title: String) { self.title = title }

    /// The `generator` meta tag of every page probe writes.
    public static let generator = "probe"

    public mutating func heading(_ text: String) { body += "<h2>\(htmlEscape(text))</h2>\n" }
    public mutating func paragraph(_ text: String) { body += "<p>\(htmlEscape(text))</p>\n" }
    public mutating func image(_ src: String, alt: String) {
        body += "<p><img src=\"\(htmlEscape(src))\" alt=\"\(htmlEscape(alt))\"></p>\n"
    }
    /// Thumbnails in a grid, each with a caption; `flagged` captions are drawn in red.
    public mutating func gallery(_ items: [(src: String, caption: String, flagged: Bool)]) {
        body += "<div class=\"gallery\">\n"
        for it in items {
            body += "<figure><img src=\"\(htmlEscape(it.src))\" alt=\"\(htmlEscape(it.caption))\">"
                + "<figcaption\(it.flagged ? " class=\"bad\"" : "")>\(htmlEscape(it.caption))</figcaption></figure>\n"
        }
        body += "</div>\n"
    }
    public mutating func preformatted(_ text: String) { body += "<pre>\(htmlEscape(text))</pre>\n" }
    /// Markup added as it is (the caller escapes any text in it with `htmlEscape`).
    public mutating func raw(_ html: String) { body += html + "\n" }
    /// A paragraph holding one link.
    public mutating func link(_ href: String, _ text: String) {
        body += "<p><a href=\"\(htmlEscape(href))\">\(htmlEscape(text))</a></p>\n"
    }
    public mutating func table(header: [String], rows: [[String]]) {
        body += "<table><tr>" + header.map { "<th>\(htmlEscape($0))</th>" }.joined() + "</tr>\n"
        for r in rows { body += "<tr>" + r.map { "<td>\(htmlEscape($0))</td>" }.joined() + "</tr>\n" }
        body += "</table>\n"
    }

    public func render() -> String {
        """
        <!doctype html>
        <html><head><meta charset="utf-8"><meta name="generator" content="\(HTMLReport.generator)"><title>\(htmlEscape(title))</title>
        <style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
        table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}
        pre{background:#f6f6f6;padding:1em;overflow-x:auto}img{max-width:100%}
        .gallery{display:flex;flex-wrap:wrap;gap:10px}.gallery figure{margin:0;width:170px}
        .gallery img{width:160px;height:160px;object-fit:cover;display:block}
        figcaption{font-size:12px;line-height:1.3}.bad{color:#b00}</style></head>
        <body><h1>\(htmlEscape(title))</h1>
        \(body)</body></html>

        """
    }
}
