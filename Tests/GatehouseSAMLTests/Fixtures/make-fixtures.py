#!/usr/bin/env python3
"""Makes the SAML fixture corpus the GatehouseSAML tests read.

Independent of the code under test: keys come from the `openssl` CLI, signatures and encryption
from the `xmlsec1` CLI (Debian packages `openssl` and `xmlsec1`), documents from string templates.
Every document is made for a frozen clock, FROZEN_NOW below; the tests verify at that instant.

    python3 Tests/GatehouseSAMLTests/Fixtures/make-fixtures.py

Keys are made only when missing, so regenerating keeps them. `manifest.json` lists every response
with the outcome the tests expect: "valid", or the name of the check that must fail.
"""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "responses")

FROZEN_NOW = "2026-11-22T10:00:00Z"
IDP = "https://idp.example.test/saml"
SP = "https://gatehouse.example.test/acme/saml2/sp/corp"
ACS = "https://gatehouse.example.test/acme/saml2/acs"
REQUEST_ID = "_req4f1e6a0c9b2d4e7f8a1b3c5d"

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


def run(*args, stdin=None):
    result = subprocess.run(args, input=stdin, capture_output=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stderr.decode()}")
    return result.stdout


def key(name, kind):
    """Makes <name>.key and <name>.crt (self-signed, ten years) unless they exist."""
    k, c = os.path.join(HERE, name + ".key"), os.path.join(HERE, name + ".crt")
    if os.path.exists(k) and os.path.exists(c):
        return k, c
    if kind == "rsa":
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", k)
    else:
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", k)
    run("openssl", "req", "-new", "-x509", "-key", k, "-out", c, "-days", "3650", "-subj", f"/CN={name}.example.test")
    return k, c


def cert_body(path):
    text = open(path).read()
    return "".join(text.split("-----")[2].split())


def signature_template(ref_id, method=RSA_SHA256, digest=SHA256, transforms=None, cert=None):
    transforms = transforms or [
        '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>',
        '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
    ]
    key_info = ""
    if cert:
        key_info = f"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_body(cert)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
    return (
        f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>'
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        f'<ds:SignatureMethod Algorithm="{method}"/>'
        f'<ds:Reference URI="#{ref_id}"><ds:Transforms>{"".join(transforms)}</ds:Transforms>'
        f'<ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue></ds:DigestValue></ds:Reference>'
        f"</ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>{key_info}</ds:Signature>"
    )


def assertion(a_id="_a7c1e0f2d3b4a5968778695a4b3c2d1e0", issuer=IDP, name_id="alice@corp.example.test",
              recipient=ACS, in_response_to=REQUEST_ID, audience=SP, not_before="2026-11-22T09:59:00Z",
              not_on_or_after="2026-11-22T10:05:00Z", confirmation_not_on_or_after="2026-11-22T10:05:00Z",
              signature="", extra_audience_restriction=""):
    irt = f' InResponseTo="{in_response_to}"' if in_response_to else ""
    return (
        f'<saml:Assertion xmlns:saml="{SAML}" xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{a_id}" Version="2.0" IssueInstant="2026-11-22T09:59:58Z">'
        f"<saml:Issuer>{issuer}</saml:Issuer>{signature}"
        "<saml:Subject>"
        f'<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID>'
        '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<saml:SubjectConfirmationData NotOnOrAfter="{confirmation_not_on_or_after}" Recipient="{recipient}"{irt}/>'
        "</saml:SubjectConfirmation></saml:Subject>"
        f'<saml:Conditions NotBefore="{not_before}" NotOnOrAfter="{not_on_or_after}">'
        f"<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>"
        f"{extra_audience_restriction}</saml:Conditions>"
        '<saml:AuthnStatement AuthnInstant="2026-11-22T09:59:57Z" SessionIndex="_s9f8e7d6c5b4a39281706f5e4d3c2b1a0" '
        'SessionNotOnOrAfter="2026-11-22T18:00:00Z">'
        "<saml:AuthnContext><saml:AuthnContextClassRef>"
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
        "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
        "<saml:AttributeStatement>"
        '<saml:Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress" '
        'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">'
        '<saml:AttributeValue xsi:type="xs:string">alice@corp.example.test</saml:AttributeValue></saml:Attribute>'
        '<saml:Attribute Name="urn:oid:2.5.4.42" FriendlyName="givenName" '
        'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">'
        '<saml:AttributeValue xsi:type="xs:string">Zoë</saml:AttributeValue></saml:Attribute>'
        '<saml:Attribute Name="groups">'
        '<saml:AttributeValue xsi:type="xs:string">engineering</saml:AttributeValue>'
        '<saml:AttributeValue xsi:type="xs:string">admins</saml:AttributeValue></saml:Attribute>'
        "</saml:AttributeStatement></saml:Assertion>"
    )


def response(body, r_id="_r3e2d1c0b9a8f7e6d5c4b3a29180706f5", destination=ACS, in_response_to=REQUEST_ID,
             issuer=IDP, signature="", status="urn:oasis:names:tc:SAML:2.0:status:Success", extra=""):
    irt = f' InResponseTo="{in_response_to}"' if in_response_to else ""
    dest = f' Destination="{destination}"' if destination else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="{r_id}" Version="2.0" '
        f'IssueInstant="2026-11-22T09:59:58Z"{dest}{irt}>'
        f"<saml:Issuer>{issuer}</saml:Issuer>{signature}{extra}"
        f'<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>'
        f"{body}</samlp:Response>"
    )


def sign(xml, key_pair, node_xpath, id_attrs=("Assertion", "Response")):
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
        path = f.name
    args = ["xmlsec1", "--sign", "--privkey-pem", f"{key_pair[0]},{key_pair[1]}"]
    for name in id_attrs:
        ns = SAML if name == "Assertion" else SAMLP
        args += ["--id-attr:ID", f"{ns}:{name}"]
    args += ["--node-xpath", node_xpath, path]
    try:
        return run(*args).decode()
    finally:
        os.unlink(path)


AES256_CBC = ("http://www.w3.org/2001/04/xmlenc#aes256-cbc", "aes-256")
AES256_GCM = ("http://www.w3.org/2009/xmlenc11#aes256-gcm", "aes-256")
AES128_GCM = ("http://www.w3.org/2009/xmlenc11#aes128-gcm", "aes-128")
RSA_OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"


def encrypt(signed_response, recipient_cert, content, transport, extra_assertion="", key_info_cert=None):
    """Wraps the response's Assertion in an EncryptedAssertion and encrypts it for recipient_cert."""
    inner = re.search(r"<saml:Assertion .*</saml:Assertion>", signed_response, flags=re.S).group(0)
    data = signed_response.replace(inner, f"<saml:EncryptedAssertion><saml:Wrapper>{inner}{extra_assertion}</saml:Wrapper></saml:EncryptedAssertion>") \
        if extra_assertion else signed_response.replace(inner, f"<saml:EncryptedAssertion>{inner}</saml:EncryptedAssertion>")
    target = "//*[local-name()='Wrapper']" if extra_assertion else "//*[local-name()='EncryptedAssertion']/*[local-name()='Assertion']"
    template = (
        '<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element">'
        f'<xenc:EncryptionMethod Algorithm="{content[0]}"/>'
        '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>'
        f'<xenc:EncryptionMethod Algorithm="{transport}"/>'
        + (f"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_body(key_info_cert)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>" if key_info_cert else "")
        + "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>"
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"
    )
    paths = []
    for text in (data, template):
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
            f.write(text)
            paths.append(f.name)
    try:
        return run("xmlsec1", "--encrypt", "--pubkey-cert-pem", recipient_cert, "--session-key", content[1],
                   "--xml-data", paths[0], "--node-xpath", target, paths[1]).decode()
    finally:
        for path in paths:
            os.unlink(path)


ASSERTION_SIG = "//*[local-name()='Assertion']/*[local-name()='Signature']"
RESPONSE_SIG = "/*[local-name()='Response']/*[local-name()='Signature']"
A_ID = "_a7c1e0f2d3b4a5968778695a4b3c2d1e0"
R_ID = "_r3e2d1c0b9a8f7e6d5c4b3a29180706f5"


def signed_assertion_response(keys, method=RSA_SHA256, digest=SHA256, cert=None, **assertion_args):
    a_id = assertion_args.get("a_id", A_ID)
    xml = response(assertion(signature=signature_template(a_id, method, digest, cert=cert), **assertion_args))
    return sign(xml, keys, ASSERTION_SIG)


def main():
    os.makedirs(OUT, exist_ok=True)
    rsa = key("idp-rsa", "rsa")
    ec = key("idp-ec", "ec")
    attacker = key("attacker", "rsa")
    key("sp", "rsa")
    manifest = {}

    def write(name, xml, expect, note, **options):
        if isinstance(xml, str):
            xml = xml.encode()
        open(os.path.join(OUT, name + ".xml"), "wb").write(xml)
        manifest[name] = dict(expect=expect, note=note, **options)

    # --- valid responses -------------------------------------------------------------------
    signed_a = signed_assertion_response(rsa)
    write("valid-assertion-signed-rsa", signed_a, "valid", "Assertion signed with RSA-SHA256")

    xml = response(assertion(), signature=signature_template(R_ID))
    signed_r = sign(xml, rsa, RESPONSE_SIG)
    write("valid-response-signed-rsa", signed_r, "valid", "only the Response signed", require="response")

    xml = response(assertion(signature=signature_template(A_ID)), signature=signature_template(R_ID))
    both = sign(sign(xml, rsa, ASSERTION_SIG), rsa, RESPONSE_SIG)
    write("valid-both-signed-rsa", both, "valid", "Assertion and Response signed", require="both")

    write("valid-assertion-signed-ecdsa", signed_assertion_response(ec, ECDSA_SHA256), "valid",
          "Assertion signed with ECDSA-SHA256 (P-256)", key="idp-ec")

    write("valid-idp-initiated", signed_assertion_response(rsa, in_response_to=None).replace(
        f' InResponseTo="{REQUEST_ID}"', ""), "valid", "no InResponseTo: IdP-initiated", request_id=None)

    # A comment inside NameID is outside what exclusive c14n signs: the signature stays valid,
    # and the value read must be the whole text, not the part before the comment.
    long_name = signed_assertion_response(rsa, name_id="admin@corp.example.test.evil.example")
    commented = long_name.replace("admin@corp.example.test.evil.example", "admin@corp.example.test<!---->.evil.example")
    write("comment-in-nameid", commented, "valid", "comment inside NameID must not truncate it",
          name_id="admin@corp.example.test.evil.example")

    # --- signature attacks ----------------------------------------------------------------
    stripped = re.sub(r"<ds:Signature .*?</ds:Signature>", "", signed_a, flags=re.S)
    write("signature-stripped", stripped, "signature_missing", "the Signature removed")

    write("signature-response-only-but-assertion-required", signed_r, "signature_missing",
          "Response signed, policy wants the Assertion signed", require="assertion")

    tampered = signed_a.replace("alice@corp.example.test</saml:NameID>", "mallory@corp.example.test</saml:NameID>")
    write("tampered-nameid", tampered, "signature", "NameID changed after signing")

    write("keyinfo-certificate-faked", signed_assertion_response(attacker, cert=attacker[1]), "signature",
          "signed by another key, whose certificate rides in KeyInfo")

    write("sha1-signature", signed_assertion_response(rsa, RSA_SHA1, SHA1), "signature_structure",
          "RSA-SHA1 and a SHA-1 digest")

    xslt = signed_a.replace(
        '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
        '<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"><xsl:stylesheet '
        'xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"><xsl:template match="/">'
        '<xsl:copy-of select="document(\'http://127.0.0.1:9/x\')"/></xsl:template></xsl:stylesheet></ds:Transform>')
    write("xslt-transform", xslt, "signature_structure", "an XSLT transform in the Reference")

    xpath = signed_a.replace(
        '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
        '<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">'
        "<ds:XPath>not(ancestor-or-self::saml:Subject)</ds:XPath></ds:Transform>")
    write("xpath-transform", xpath, "signature_structure", "an XPath transform in the Reference")

    # XML signature wrapping (Somorovsky et al., "On Breaking SAML", 2012), each against the
    # document kind it targets. The original signed element survives somewhere, so libxmlsec1
    # alone could report a valid signature; Gatehouse must refuse each one.
    evil_assertion = assertion(name_id="mallory@corp.example.test", a_id="_evil0000000000000000000000000000")
    r_sig = re.search(r"<ds:Signature .*?</ds:Signature>", signed_r, flags=re.S).group(0)
    r_inner = signed_r.split("?>", 1)[1].strip()
    unsigned_evil_response = response(evil_assertion, r_id="_evilresponse000000000000000000000")
    # XSW1: evil Response on top, its Signature is the original one holding the original Response.
    xsw1 = unsigned_evil_response.replace(
        "<samlp:Status>", r_sig.replace("</ds:Signature>", r_inner + "</ds:Signature>") + "<samlp:Status>", 1)
    write("xsw1", xsw1, "structure", "XSW1: original Response inside the copied Signature", require="response")
    # XSW2: the same, the original Response a sibling before the Signature (detached).
    xsw2 = unsigned_evil_response.replace("<samlp:Status>", r_inner + r_sig + "<samlp:Status>", 1)
    write("xsw2", xsw2, "structure", "XSW2: original Response beside the copied Signature", require="response")

    a_inner = re.search(r"<saml:Assertion .*</saml:Assertion>", signed_a, flags=re.S).group(0)
    a_sig = re.search(r"<ds:Signature .*?</ds:Signature>", a_inner, flags=re.S).group(0)
    # XSW3: an evil Assertion (same ID) before the signed one.
    evil_same_id = evil_assertion  # a fresh ID: the hidden original still resolves, as in the paper
    xsw3 = signed_a.replace(a_inner, evil_same_id + a_inner)
    write("xsw3", xsw3, "structure", "XSW3: evil Assertion before the signed one")
    # XSW4: the evil Assertion wraps the signed one.
    xsw4 = signed_a.replace(a_inner, evil_same_id.replace("</saml:Assertion>", a_inner + "</saml:Assertion>"))
    write("xsw4", xsw4, "structure", "XSW4: evil Assertion wrapping the signed one")
    # XSW5: the evil Assertion carries the copied Signature; the original is appended after it.
    evil_with_sig = evil_same_id.replace(f"<saml:Issuer>{IDP}</saml:Issuer>", f"<saml:Issuer>{IDP}</saml:Issuer>{a_sig}", 1)
    xsw5 = signed_a.replace(a_inner, evil_with_sig).replace("</samlp:Response>", a_inner.replace(a_sig, "") + "</samlp:Response>")
    write("xsw5", xsw5, "structure", "XSW5: copied Signature in the evil Assertion, original appended")
    # XSW6: as XSW5, with the original inside the copied Signature.
    evil_sig_holding = evil_same_id.replace(f"<saml:Issuer>{IDP}</saml:Issuer>",
                                            f"<saml:Issuer>{IDP}</saml:Issuer>" + a_sig.replace("</ds:Signature>", a_inner + "</ds:Signature>"), 1)
    xsw6 = signed_a.replace(a_inner, evil_sig_holding)
    write("xsw6", xsw6, "structure", "XSW6: original Assertion inside the copied Signature")
    # XSW7: the original hidden in an Extensions element, the evil Assertion unsigned beside it.
    xsw7 = signed_a.replace(a_inner, evil_same_id).replace(
        "<samlp:Status>", f"<samlp:Extensions>{a_inner}</samlp:Extensions><samlp:Status>", 1)
    write("xsw7", xsw7, "structure", "XSW7: original Assertion in Extensions, evil one beside")
    # XSW8: the evil Assertion's copied Signature holds an Object with the original.
    xsw8 = signed_a.replace(a_inner, evil_same_id.replace(
        f"<saml:Issuer>{IDP}</saml:Issuer>",
        f"<saml:Issuer>{IDP}</saml:Issuer>" + a_sig.replace("</ds:Signature>", f"<ds:Object>{a_inner.replace(a_sig, '')}</ds:Object></ds:Signature>"), 1))
    write("xsw8", xsw8, "structure", "XSW8: original Assertion in a ds:Object of the copied Signature")

    two = signed_a.replace(a_inner, a_inner + signed_assertion_response(rsa, a_id="_a2second000000000000000000000000").split("<samlp:Status>")[1].split("</samlp:Status>")[1].replace("</samlp:Response>", ""))
    write("two-assertions", two, "structure", "two signed Assertions")

    dup = signed_a.replace("<samlp:Status>", f'<samlp:Extensions><saml:Issuer ID="{A_ID}">x</saml:Issuer></samlp:Extensions><samlp:Status>', 1)
    write("duplicate-ids", dup, "structure", "another element carries the Assertion's ID")

    # --- parser attacks --------------------------------------------------------------------
    body = signed_a.split("?>", 1)[1]
    write("doctype-xxe", '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + body.replace(
        "alice@corp.example.test</saml:NameID>", "&x;</saml:NameID>"), "xml", "external entity (XXE)")
    lol = "".join(f'<!ENTITY l{i} "&l{i-1};&l{i-1};&l{i-1};&l{i-1};&l{i-1};&l{i-1};&l{i-1};&l{i-1};&l{i-1};&l{i-1};">' for i in range(1, 10))
    write("billion-laughs", f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY l0 "lol">{lol}]>' + body.replace(
        "alice@corp.example.test</saml:NameID>", "&l9;</saml:NameID>"), "xml", "billion laughs")
    write("doctype-internal-only", '<?xml version="1.0"?>\n<!DOCTYPE samlp:Response>' + body, "xml", "any DOCTYPE")
    write("utf16", ('<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + body).encode("utf-16"),
          "xml", "UTF-16 hiding a DOCTYPE from a byte scan")
    write("not-xml", "<samlp:Response", "xml", "not well-formed")

    # --- policy ----------------------------------------------------------------------------
    write("wrong-destination", sign(response(assertion(signature=signature_template(A_ID)), destination="https://other.example.test/acs"),
          rsa, ASSERTION_SIG), "destination", "Destination is another SP's ACS")
    write("missing-destination", sign(response(assertion(signature=signature_template(A_ID)), destination=None),
          rsa, ASSERTION_SIG), "destination", "no Destination")
    write("wrong-recipient", signed_assertion_response(rsa, recipient="https://other.example.test/acs"), "recipient",
          "SubjectConfirmationData Recipient is another ACS")
    write("wrong-audience", signed_assertion_response(rsa, audience="https://other.example.test/sp"), "audience",
          "Audience is another SP")
    write("second-audience-restriction-excludes-us", signed_assertion_response(
        rsa, extra_audience_restriction="<saml:AudienceRestriction><saml:Audience>https://other.example.test/sp</saml:Audience></saml:AudienceRestriction>"),
        "audience", "every AudienceRestriction must name us")
    write("wrong-issuer", signed_assertion_response(rsa, issuer="https://evil.example.test/saml"), "issuer",
          "Assertion Issuer is another IdP")
    write("wrong-response-issuer", sign(response(assertion(signature=signature_template(A_ID)), issuer="https://evil.example.test/saml"),
          rsa, ASSERTION_SIG), "issuer", "Response Issuer is another IdP")
    write("wrong-in-response-to", sign(response(assertion(signature=signature_template(A_ID), in_response_to="_someoneelse"),
          in_response_to="_someoneelse"), rsa, ASSERTION_SIG), "in_response_to", "answers another request")
    write("unsolicited-when-request-expected", signed_assertion_response(rsa, in_response_to=None).replace(
        f' InResponseTo="{REQUEST_ID}"', ""), "in_response_to", "no InResponseTo though a request was sent")
    write("expired", signed_assertion_response(rsa, not_on_or_after="2026-11-22T09:50:00Z",
          confirmation_not_on_or_after="2026-11-22T09:50:00Z"), "time", "Conditions and confirmation expired")
    write("not-yet-valid", signed_assertion_response(rsa, not_before="2026-11-22T10:10:00Z"), "time",
          "Conditions NotBefore in the future")
    write("status-failure", sign(response(assertion(signature=signature_template(A_ID)),
          status="urn:oasis:names:tc:SAML:2.0:status:Requester"), rsa, ASSERTION_SIG), "status", "Status is not Success")

    # --- encrypted assertions (for the SP's key, sp.crt) --------------------------------------
    sp = (os.path.join(HERE, "sp.key"), os.path.join(HERE, "sp.crt"))
    write("valid-encrypted-aes256-cbc", encrypt(signed_a, sp[1], AES256_CBC, RSA_OAEP), "valid",
          "signed Assertion, encrypted AES-256-CBC with an RSA-OAEP key", decrypt="sp")
    write("valid-encrypted-aes128-gcm", encrypt(signed_a, sp[1], AES128_GCM, RSA_OAEP), "valid",
          "signed Assertion, encrypted AES-128-GCM", decrypt="sp")
    enc_unsigned = encrypt(response(assertion(), signature=signature_template(R_ID)), sp[1], AES256_GCM, RSA_OAEP)
    write("valid-encrypted-response-signed", sign(enc_unsigned, rsa, RESPONSE_SIG, id_attrs=("Response",)), "valid",
          "Assertion encrypted (AES-256-GCM) inside a signed Response", decrypt="sp", require="response")
    write("encrypted-without-sp-key", encrypt(signed_a, sp[1], AES256_CBC, RSA_OAEP), "encryption",
          "encrypted, but the provider has no SP key")
    write("encrypted-rsa-1_5", encrypt(signed_a, sp[1], AES256_CBC, RSA_1_5), "encryption",
          "key transport RSA PKCS#1 v1.5 (Bleichenbacher)", decrypt="sp")
    write("encrypted-for-another-sp", encrypt(signed_a, attacker[1], AES256_CBC, RSA_OAEP), "encryption",
          "encrypted for another key", decrypt="sp")
    write("encrypted-unsigned-assertion", encrypt(response(assertion()), sp[1], AES256_CBC, RSA_OAEP), "signature_missing",
          "the decrypted Assertion is not signed", decrypt="sp")
    write("encrypted-mark-run-id", encrypt(response(assertion(a_id="_a" + "\u0301" * 40)), sp[1], AES256_CBC, RSA_OAEP),
          "xml", "an Assertion ID of 40 combining marks, seen only once decrypted", decrypt="sp")
    write("encrypted-wrapping-two-assertions", encrypt(signed_a, sp[1], AES256_CBC, RSA_OAEP, extra_assertion=evil_assertion),
          "encryption", "the ciphertext holds the signed Assertion and an evil one", decrypt="sp")
    cbc = encrypt(signed_a, sp[1], AES256_CBC, RSA_OAEP)
    last = cbc.rindex("<xenc:CipherData>")
    end = cbc.index("</xenc:CipherData>", last) + len("</xenc:CipherData>")
    write("encrypted-cipher-reference", cbc[:last] + '<xenc:CipherData><xenc:CipherReference URI="file:///etc/hostname"/></xenc:CipherData>' + cbc[end:],
          "encryption", "the ciphertext is to be fetched from a URI (SSRF, file read)", decrypt="sp")
    write("encrypted-retrieval-method", cbc.replace("<xenc:EncryptedKey", '<ds:RetrievalMethod URI="http://127.0.0.1:9/key" Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey"/><xenc:EncryptedKey', 1),
          "encryption", "a RetrievalMethod in KeyInfo (fetches a key from a URI)", decrypt="sp")
    inner_key = re.search(r"<xenc:EncryptedKey>.*?</xenc:EncryptedKey>", cbc, flags=re.S).group(0)
    write("encrypted-nested-encrypted-key", cbc.replace(inner_key, inner_key.replace("<xenc:CipherData>",
          '<ds:KeyInfo><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="' + RSA_1_5 + '"/><xenc:CipherData><xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData>', 1), 1),
          "encryption", "an EncryptedKey inside an EncryptedKey (RSA 1.5 smuggled past the first level)", decrypt="sp")
    write("valid-encrypted-keyinfo-x509", encrypt(signed_a, sp[1], AES256_GCM, RSA_OAEP, key_info_cert=sp[1]), "valid",
          "the EncryptedKey names the SP certificate in its KeyInfo, as Okta and ADFS do", decrypt="sp")

    # IdP metadata naming both signing keys (rollover) and the SP's encryption key.
    metadata = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="{DS}" entityID="{IDP}" '
        'validUntil="2027-11-22T10:00:00Z" cacheDuration="PT6H">'
        '<md:IDPSSODescriptor WantAuthnRequestsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        + "".join(
            f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_body(c)}'
            "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>" for c in (rsa[1], ec[1]))
        + '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/saml/slo"/>'
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/saml/sso"/>'
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.test/saml/sso-post"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>\n"
    )
    open(os.path.join(HERE, "idp-metadata.xml"), "w").write(metadata)
    # The same document signed, for metadata signature checks against a pinned certificate.
    md_signed = metadata.replace(f'cacheDuration="PT6H">', f'cacheDuration="PT6H" ID="_md1">' + signature_template("_md1"), 1)
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(md_signed)
        path = f.name
    signed_md = run("xmlsec1", "--sign", "--privkey-pem", f"{rsa[0]},{rsa[1]}", "--id-attr:ID",
                    "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor", path).decode()
    os.unlink(path)
    open(os.path.join(HERE, "idp-metadata-signed.xml"), "w").write(signed_md)

    # The form value an ACS receives, for the CLI tests.
    open(os.path.join(HERE, "valid-assertion-signed-rsa.b64"), "w").write(base64.b64encode(signed_a.encode()).decode() + "\n")

    settings = dict(now=FROZEN_NOW, idp_entity_id=IDP, sp_entity_id=SP, acs_url=ACS, request_id=REQUEST_ID)
    json.dump(dict(settings=settings, responses=manifest), open(os.path.join(HERE, "manifest.json"), "w"), indent=1, sort_keys=True)
    print(f"{len(manifest)} responses in {OUT}")


if __name__ == "__main__":
    main()
