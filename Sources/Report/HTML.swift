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

    public mutating func heading(_ text: String) { body += "<h2>\(htmlEscape(text))</h2>\n" }
    public mutating func paragraph(_ text: String) { body += "<p>\(htmlEscape(text))</p>\n" }
    public mutating func image(_ src: String, alt: String) {
        body += "<p><img src=\"\(htmlEscape(src))\" alt=\"\(htmlEscape(alt))\"></p>\n"
    }
    public mutating func preformatted(_ text: String) { body += "<pre>\(htmlEscape(text))</pre>\n" }
    public mutating func table(header: [String], rows: [[String]]) {
        body += "<table><tr>" + header.map { "<th>\(htmlEscape($0))</th>" }.joined() + "</tr>\n"
        for r in rows { body += "<tr>" + r.map { "<td>\(htmlEscape($0))</td>" }.joined() + "</tr>\n" }
        body += "</table>\n"
    }

    public func render() -> String {
        """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>\(htmlEscape(title))</title>
        <style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
        table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
        pre{background:#f6f6f6;padding:1em;overflow-x:auto}img{max-width:100%}</style></head>
        <body><h1>\(htmlEscape(title))</h1>
        \(body)</body></html>

        """
    }
}
