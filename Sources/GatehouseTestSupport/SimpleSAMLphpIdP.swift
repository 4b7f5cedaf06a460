import Foundation
import GatehouseSAML
import GatehouseCore

/// A real SAML identity provider for end-to-end tests: Debian's SimpleSAMLphp under PHP's built-in
/// server on 127.0.0.1, configured in a temporary folder (its own key, one user `alice`/`secret`).
/// The SP it trusts is named later, once Gatehouse's address is known (`trust(sp:)`).
public final class SimpleSAMLphpIdP: @unchecked Sendable {
    public let port: Int
    let folder: URL
    let process: Process
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var metadataURL: String { baseURL + "/saml2/idp/metadata.php" }
    public var entityID: String { metadataURL }
    public static let webRoot = "/usr/share/simplesamlphp/www"
    public static let username = "alice"
    public static let password = "secret"

    /// Set by scripts/test.sh: a missing SimpleSAMLphp is then a failure, not a skipped suite.
    public static var isRequired: Bool { ProcessInfo.processInfo.environment["GATEHOUSE_TEST_REQUIRE_SIMPLESAMLPHP"] == "1" }

    public static var isInstalled: Bool {
        FileManager.default.fileExists(atPath: webRoot) && FileManager.default.isExecutableFile(atPath: "/usr/bin/php")
    }

    public init() throws {
        guard Self.isInstalled else { throw ConfigurationError("SimpleSAMLphp is not installed (apt-get install simplesamlphp php-cli php-xml php-mbstring php-curl)") }
        port = try LoopbackPort.pick()
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-ssp-\(UUID().uuidString)")
        let fm = FileManager.default
        for sub in ["cert", "log", "data", "tmp", "sessions", "metadata"] {
            try fm.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        let (key, certificate) = try SAMLSigningCredential.generate(commonName: "simplesamlphp.test")
        try key.write(to: folder.appendingPathComponent("cert/idp.pem"), atomically: true, encoding: .utf8)
        try certificate.write(to: folder.appendingPathComponent("cert/idp.crt"), atomically: true, encoding: .utf8)
        let dir = folder.path
        let salt = UUID().uuidString
        try """
        <?php
        $config = [
            'baseurlpath' => 'http://127.0.0.1:\(port)/',
            'certdir' => '\(dir)/cert/',
            'loggingdir' => '\(dir)/log/',
            'datadir' => '\(dir)/data/',
            'tempdir' => '\(dir)/tmp',
            'metadatadir' => '\(dir)/metadata/',
            'attributenamemapdir' => '/etc/simplesamlphp/attributemap/',
            'secretsalt' => '\(salt)',
            'auth.adminpassword' => '\(UUID().uuidString)',
            'technicalcontact_name' => 'Gatehouse tests',
            'technicalcontact_email' => 'tests@example.test',
            'timezone' => 'UTC',
            'enable.saml20-idp' => true,
            'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true],
            'session.cookie.secure' => false,
            'session.phpsession.cookiename' => 'SSPSESSID',
            'store.type' => 'phpsession',
            'logging.handler' => 'file',
            'logging.logfile' => 'simplesamlphp.log',
            'logging.level' => SimpleSAML\\Logger::INFO,
            'language.available' => ['en'],
            'admin.checkforupdates' => false,
            'trusted.url.domains' => ['127.0.0.1:9'],
        ];
        """.write(to: folder.appendingPathComponent("config.php"), atomically: true, encoding: .utf8)
        try """
        <?php
        $config = [
            'admin' => ['core:AdminPassword'],
            'example-userpass' => [
                'exampleauth:UserPass',
                '\(Self.username):\(Self.password)' => [
                    'uid' => ['alice'],
                    'mail' => ['alice@corp.example.test'],
                    'givenName' => ['Alice'],
                    'sn' => ['Liddell'],
                    'eduPersonAffiliation' => ['member', 'staff'],
                ],
            ],
        ];
        """.write(to: folder.appendingPathComponent("authsources.php"), atomically: true, encoding: .utf8)
        try """
        <?php
        $metadata['__DYNAMIC:1__'] = [
            'host' => '__DEFAULT__',
            'privatekey' => 'idp.pem',
            'certificate' => 'idp.crt',
            'auth' => 'example-userpass',
            'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
            'saml20.sign.response' => true,
            'saml20.sign.assertion' => true,
            'sign.logout' => true,
            'logouttype' => 'traditional',
            'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
            'authproc' => [100 => ['class' => 'core:AttributeMap', 'name2oid']],
        ];
        """.write(to: folder.appendingPathComponent("metadata/saml20-idp-hosted.php"), atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/php")
        process.arguments = ["-d", "session.save_path=\(dir)/sessions", "-d", "display_errors=stderr", "-S", "127.0.0.1:\(port)", "-t", Self.webRoot]
        var environment = ProcessInfo.processInfo.environment
        environment["SIMPLESAMLPHP_CONFIG_DIR"] = dir
        process.environment = environment
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = try FileHandle(forWritingTo: {
            let log = folder.appendingPathComponent("log/php-server.log")
            _ = fm.createFile(atPath: log.path, contents: nil)
            return log
        }())
        try trust(spEntityID: "urn:nobody", acsURL: "http://127.0.0.1:9/acs", spCertificatePEM: nil)
    }

    /// Replaces the IdP's signing key and certificate (a rollover); returns the new certificate's
    /// base64 body as metadata shows it.
    @discardableResult
    public func rotateKey() throws -> String {
        let (key, certificate) = try SAMLSigningCredential.generate(commonName: "simplesamlphp-next.test")
        try key.write(to: folder.appendingPathComponent("cert/idp.pem"), atomically: true, encoding: .utf8)
        try certificate.write(to: folder.appendingPathComponent("cert/idp.crt"), atomically: true, encoding: .utf8)
        return certificate.components(separatedBy: "-----")[2].filter { !$0.isWhitespace }
    }

    public func start() async throws {
        try process.run()
        try await LoopbackPort.waitUntilListening(port)
    }

    /// Names the SP SimpleSAMLphp will answer: its entity ID, ACS, and (when given) the certificate
    /// whose signature on every AuthnRequest it then requires.
    public func trust(spEntityID: String, acsURL: String, spCertificatePEM: String?, sloURL: String? = nil, encryptAssertions: Bool = false) throws {
        var entry = """
            'AssertionConsumerService' => '\(acsURL)',\(sloURL.map { "\n    'SingleLogoutService' => '\($0)'," } ?? "")
            'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
            'simplesaml.nameidattribute' => 'urn:oid:0.9.2342.19200300.100.1.1',
        """
        if let pem = spCertificatePEM {
            let body = pem.components(separatedBy: "-----")[2].filter { !$0.isWhitespace }
            entry += "\n    'validate.authnrequest' => true,\n    'validate.logout' => true,\n    'certData' => '\(body)',"
            if encryptAssertions { entry += "\n    'assertion.encryption' => true," }
        }
        try "<?php\n$metadata['\(spEntityID)'] = [\n\(entry)\n];\n"
            .write(to: folder.appendingPathComponent("metadata/saml20-sp-remote.php"), atomically: true, encoding: .utf8)
    }

    public func stop() {
        if process.isRunning {
            // SIGKILL: the child inherits the test process's blocked signal mask, SIGTERM included.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }

    /// SimpleSAMLphp's log and PHP's, for a failing test's message.
    public func logs() -> String {
        ["log/simplesamlphp.log", "log/php-server.log"].map {
            (try? String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8)) ?? ""
        }.joined(separator: "\n")
    }
}
