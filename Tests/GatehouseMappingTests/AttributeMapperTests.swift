import Foundation
import Testing
@testable import GatehouseCore
@testable import GatehouseMapping

@Suite struct AttributeMapperTests {
    func identity(_ attributes: [String: [String]]) -> VerifiedIdentity {
        VerifiedIdentity(providerName: "Okta", providerKind: .oidc, upstreamIssuer: "https://okta.example", upstreamSubject: "00u1", attributes: attributes, authTime: nil, acr: nil, amr: [], sessionIndex: nil)
    }

    @Test func cognitoFlatMappingPicksUpstreamNames() {
        let mapping = AttributeMapping(["email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "name": "displayName", "family_name": "missing"])
        let mapped = AttributeMapper.map(identity(["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": [" ada@x.com "], "displayName": ["Ada"]]), with: mapping)
        #expect(mapped == ["email": "ada@x.com", "name": "Ada"])
    }

    @Test func booleansAreNormalisedAndMultipleValuesKept() {
        let mapping = AttributeMapping(["email_verified": "ev", "custom:groups": "groups"])
        let mapped = AttributeMapper.map(identity(["ev": ["True"], "groups": ["a", "b\"c"]]), with: mapping)
        #expect(mapped["email_verified"] == "true")
        #expect(mapped["custom:groups"] == "[\"a\",\"b\\\"c\"]")
        #expect(AttributeMapper.map(identity(["ev": ["no"]]), with: mapping)["email_verified"] == "false")
    }

    @Test func oversizedValuesAreCut() {
        let mapped = AttributeMapper.map(identity(["n": [String(repeating: "x", count: 10_000)]]), with: AttributeMapping(["name": "n"]))
        #expect(mapped["name"]?.utf8.count == AttributeMapper.maximumValueLength)
    }

    @Test func usernamesAreDeterministic() {
        #expect(AttributeMapper.username(for: identity([:])) == "Okta_00u1")
    }

    @Test func unknownTargetsAreRefusedWhenSaved() {
        #expect(throws: DirectoryError.self) { try AttributeMapping(["favourite_colour": "c"]).validate() }
        #expect(throws: DirectoryError.self) { try AttributeMapping(["email": ""]).validate() }
    }
}
