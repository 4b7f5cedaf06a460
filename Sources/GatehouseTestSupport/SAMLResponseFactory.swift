public import Foundation
import GatehouseCore
public import GatehouseSAML

/// Makes signed SAML responses as an IdP would, for benchmarks: the Assertion signed (RSA-SHA256,
/// exclusive c14n) with the given IdP credential, valid for five minutes from `now`.
public struct SAMLResponseFactory: Sendable {
    public let idp: SAMLSigningCredential
    public let idpEntityID: String
    public let spEntityID: String
    public let acsURL: String
    /// Extra attributes, to bring the response to a realistic size.
    public let attributeCount: Int

    public init(idp: SAMLSigningCredential, idpEntityID: String, spEntityID: String, acsURL: String, attributeCount: Int = 30) {
        self.idp = idp
        self.idpEntityID = idpEntityID
        self.spEntityID = spEntityID
        self.acsURL = acsURL
        self.attributeCount = attributeCount
    }

    /// The IdP metadata naming this factory's signing certificate and an SSO endpoint.
    public func metadata(ssoURL: String) -> String {
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"\(Markup.escape(idpEntityID))\">"
            + "<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">"
            + "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data>"
            + "<ds:X509Certificate>\(idp.certificate.base64)</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            + "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"\(Markup.escape(ssoURL))\"/>"
            + "</md:IDPSSODescriptor></md:EntityDescriptor>"
    }

    public func response(nameID: String, requestID: String?, now: Date) throws -> String {
        let stamp = SAMLTime.format
        let assertionID = "_a" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let responseID = "_r" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let irt = requestID.map { " InResponseTo=\"\(Markup.escape($0))\"" } ?? ""
        var attributes = "<saml:Attribute Name=\"email\"><saml:AttributeValue>\(Markup.escape(nameID))</saml:AttributeValue></saml:Attribute>"
        for i in 0..<attributeCount {
            attributes += "<saml:Attribute Name=\"urn:oid:1.3.6.1.4.1.5923.1.1.1.\(i)\" FriendlyName=\"attribute\(i)\" "
                + "NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:uri\"><saml:AttributeValue>value-\(i)-of-a-typical-length</saml:AttributeValue></saml:Attribute>"
        }
        let assertion = "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"\(assertionID)\" Version=\"2.0\" IssueInstant=\"\(stamp(now))\">"
            + "<saml:Issuer>\(Markup.escape(idpEntityID))</saml:Issuer>" + idp.signatureTemplate(for: assertionID)
            + "<saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">\(Markup.escape(nameID))</saml:NameID>"
            + "<saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData "
            + "NotOnOrAfter=\"\(stamp(now.addingTimeInterval(300)))\" Recipient=\"\(Markup.escape(acsURL))\"\(irt)/></saml:SubjectConfirmation></saml:Subject>"
            + "<saml:Conditions NotBefore=\"\(stamp(now.addingTimeInterval(-60)))\" NotOnOrAfter=\"\(stamp(now.addingTimeInterval(300)))\">"
            + "<saml:AudienceRestriction><saml:Audience>\(Markup.escape(spEntityID))</saml:Audience></saml:AudienceRestriction></saml:Conditions>"
            + "<saml:AuthnStatement AuthnInstant=\"\(stamp(now))\" SessionIndex=\"_s\(UUID().uuidString.prefix(8))\"><saml:AuthnContext>"
            + "<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>"
            + "</saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>\(attributes)</saml:AttributeStatement></saml:Assertion>"
        let signed = try idp.signEnveloped(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"\(responseID)\" Version=\"2.0\" "
                + "IssueInstant=\"\(stamp(now))\" Destination=\"\(Markup.escape(acsURL))\"\(irt)>"
                + "<saml:Issuer xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">\(Markup.escape(idpEntityID))</saml:Issuer>"
                + "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>"
                + assertion + "</samlp:Response>",
            id: assertionID)
        return signed
    }
}
