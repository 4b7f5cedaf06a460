import Foundation
import HTTPTypes
import GatehouseCore

/// What a refused upstream login means to the person (a page) and to the app (an error code of
/// RFC 6749 §4.1.2.1 or OpenID Connect Core §3.1.2.6). The exact cause is for the admin and goes
/// only to the logs.
struct UpstreamFailureExplanation {
    let title: String
    let message: String
    let appCode: String
    let appDescription: String
    let status: HTTPResponse.Status

    /// The OpenID Connect codes an app may receive as they are: they tell it to retry with a prompt.
    static let passedThrough: Set<String> = ["login_required", "consent_required", "interaction_required", "account_selection_required"]

    init(_ e: UpstreamError, provider: String) {
        switch e.kind {
        case .upstreamRefused:
            status = .ok
            switch e.upstreamCode {
            case "access_denied"?:
                title = "Sign-in cancelled"
                message = "You cancelled signing in with \(provider), or \(provider) did not allow it. You can return to the application and try again."
                appCode = "access_denied"
                appDescription = "the user or the identity provider declined the sign-in"
            case let code? where Self.passedThrough.contains(code):
                title = "\(provider) needs you first"
                message = "\(provider) could not sign you in without asking you something (\(code.replacingOccurrences(of: "_", with: " "))). Return to the application and start again; follow what \(provider) shows you."
                appCode = code
                appDescription = "the identity provider needs the user to interact (\(code))"
            case "temporarily_unavailable"?, "server_error"?:
                title = "\(provider) is unavailable"
                message = "\(provider) could not sign you in just now. Please try again in a few minutes."
                appCode = "temporarily_unavailable"
                appDescription = "the identity provider is unavailable"
            default:
                title = "Sign-in did not complete"
                message = "\(provider) did not sign you in. Return to the application and try again; if it keeps happening, tell the application's support."
                appCode = "access_denied"
                appDescription = "the identity provider did not sign the user in"
            }
        case .verification:
            status = .badRequest
            title = "Sign-in could not be verified"
            message = "The answer from \(provider) did not pass Gatehouse's checks, so you were not signed in. This can happen when a sign-in is old or was opened twice. Return to the application and start again."
            appCode = "access_denied"
            appDescription = "the identity provider's response failed verification"
        case .unreachable:
            status = .serviceUnavailable
            title = "\(provider) cannot be reached"
            message = "Gatehouse could not reach \(provider) to finish your sign-in. Please try again in a few minutes."
            appCode = "temporarily_unavailable"
            appDescription = "the identity provider cannot be reached"
        case .misconfigured:
            status = .serviceUnavailable
            title = "Sign-in with \(provider) is not set up correctly"
            message = "This is not something you did. The administrator can see the cause in Gatehouse's logs and with `gatehouse oidc verify`."
            appCode = "server_error"
            appDescription = "the identity provider is misconfigured"
        }
    }
}
