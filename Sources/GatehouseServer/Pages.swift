import Foundation
import Crypto
import GatehouseCore

/// The few pages a person sees: the provider chooser and plain error pages. Every interpolated
/// value is HTML-escaped.
enum Pages {
    static func escape(_ s: String) -> String { Markup.escape(s) }

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

    static func linkProof(poolName: String, newProvider: String, choices: [(name: String, url: String)], cancelURL: String) -> String {
        let links = choices.map { "<a class=\"button\" href=\"\(escape($0.url))\">Sign in with \(escape($0.name))</a>" }.joined(separator: "\n")
        return layout(title: "Link your account", body: """
            <h1>You already have an account</h1>
            <p>An account of \(escape(poolName)) already uses this email address. To use \(escape(newProvider)) with it, \
            first sign in the way you did before; \(escape(newProvider)) will then be linked to that account.</p>
            \(links)
            <p><a href="\(escape(cancelURL))">Cancel</a></p>
            """)
    }

    static func upstreamFailure(title: String, message: String, continueURL: String) -> String {
        layout(title: title, body: """
            <h1>\(escape(title))</h1><p>\(escape(message))</p>
            <a class="button" href="\(escape(continueURL))">Return to the application</a>
            """)
    }

    static let autoPostScript = "document.forms[0].submit();"
    static let autoPostScriptHash = "sha256-" + Data(SHA256.hash(data: Data(autoPostScript.utf8))).base64EncodedString()

    static func autoPost(action: String, fields: [UpstreamRequest.FormField]) -> String {
        let inputs = fields.map { "<input type=\"hidden\" name=\"\(escape($0.name))\" value=\"\(escape($0.value))\">" }.joined()
        return layout(title: "Continue", body: """
            <form method="post" action="\(escape(action))">\(inputs)<p>Signing you in…</p>\
            <noscript><button type="submit">Continue</button></noscript></form><script>\(autoPostScript)</script>
            """)
    }
}
