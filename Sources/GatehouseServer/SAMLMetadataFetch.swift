public import GatehouseOIDC
import Foundation
import GatehouseCore

/// Fetches an IdP's metadata document over HTTPS (plain http only on loopback), for import and
/// for the background refresh.
public enum SAMLMetadataFetch {
    public static func fetch(_ url: String, http: UpstreamHTTP) async throws -> String {
        guard let u = URL(string: url), let host = u.host, u.scheme == "https" || (u.scheme == "http" && AppClient.isLoopbackHost(host)) else {
            throw ConfigurationError("the metadata URL must use https (plain http only on loopback)")
        }
        let response = try await http.get(url)
        guard response.status == 200 else { throw ConfigurationError("the metadata URL answered HTTP \(response.status)") }
        return String(decoding: response.body, as: UTF8.self)
    }
}
