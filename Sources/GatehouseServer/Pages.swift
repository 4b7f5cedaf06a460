import Foundation

/// The few pages a person sees: the provider chooser and plain error pages. Every interpolated
/// value is HTML-escaped.
enum Pages {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    static func layout(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}
        a.button{display:block;margin:.5rem 0;padding:.75rem 1rem;border:1px solid #888;border-radius:.4rem;text-decoration:none;color:#222}
        a.button:hover{background:#f2f2f2}</style></head>
        <body>\(body)</body></html>
        """
    }

    static func error(title: String, message: String) -> String {
        layout(title: title, body: "<h1>\(escape(title))</h1><p>\(escape(message))</p>")
    }

    static func chooser(poolName: String, choices: [(name: String, url: String)]) -> String {
        let links = choices.map { "<a class=\"button\" href=\"\(escape($0.url))\">Continue with \(escape($0.name))</a>" }.joined(separator: "\n")
        return layout(title: "Sign in", body: "<h1>Sign in to \(escape(poolName))</h1>\n\(links)")
    }
}
