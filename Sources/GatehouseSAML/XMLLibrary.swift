internal import CXMLSec
import Foundation
import GatehouseCore

/// libxml2 and libxmlsec1, initialised once for the process.
///
/// Every entry point of this module that touches either library first reads `XMLLibrary.ready`;
/// the first read runs the initialisation (Swift runs a static initialiser exactly once, even
/// under concurrency), later reads cost a load.
enum XMLLibrary {
    static let ready: Bool = initialise()

    private static func initialise() -> Bool {
        xmlInitParser()
        // Nothing is ever loaded from outside the document: no DTD, no external entity, no network.
        xmlSetExternalEntityLoader(refuseExternalEntity)
        guard xmlSecInit() == 0, gh_xmlsec_check_version() == 1 else { return false }
        guard xmlSecOpenSSLAppInit(nil) == 0, xmlSecOpenSSLInit() == 0 else { return false }
        // No URI a message names is ever opened by libxmlsec1 (its file and network readers go).
        xmlSecIOCleanupCallbacks()
        // xmlsec prints every error to stderr by default; Gatehouse reports its own reasons instead.
        xmlSecErrorsDefaultCallbackEnableOutput(0)
        xmlSecErrorsSetCallback(silence)
        return true
    }

    static func require() throws {
        guard ready else { throw VerificationError(check: "internal", reason: "libxmlsec1 could not be initialised") }
    }
}

private func refuseExternalEntity(
    _ url: UnsafePointer<CChar>?, _ id: UnsafePointer<CChar>?, _ context: xmlParserCtxtPtr?
) -> xmlParserInputPtr? {
    nil
}

private func silence(
    _ file: UnsafePointer<CChar>?, _ line: Int32, _ function: UnsafePointer<CChar>?,
    _ errorObject: UnsafePointer<CChar>?, _ errorSubject: UnsafePointer<CChar>?, _ reason: Int32,
    _ message: UnsafePointer<CChar>?
) {}

/// Whether the struct layouts this module was compiled with match the installed library's (a
/// missing `XMLSEC_NO_SIZE_T` silently changes them). Tests compare with a C compiler's view.
package enum XMLSecLayout {
    package static var dsigContextSize: Int { Int(gh_dsig_ctx_size()) }
    package static var encryptionContextSize: Int { Int(gh_enc_ctx_size()) }
}
