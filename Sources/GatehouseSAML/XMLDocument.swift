internal import CXMLSec
import Foundation
import GatehouseCore

/// XML namespaces SAML documents use.
enum NS {
    static let protocol_: StaticString = "urn:oasis:names:tc:SAML:2.0:protocol"
    static let assertion: StaticString = "urn:oasis:names:tc:SAML:2.0:assertion"
    static let metadata: StaticString = "urn:oasis:names:tc:SAML:2.0:metadata"
    static let dsig: StaticString = "http://www.w3.org/2000/09/xmldsig#"
    static let xenc: StaticString = "http://www.w3.org/2001/04/xmlenc#"
    static let xenc11: StaticString = "http://www.w3.org/2009/xmlenc11#"
}

/// A parsed XML document that owns its libxml2 tree; freed with the object.
///
/// Parsing refuses every document type declaration (so no entity can be declared, expanded or
/// fetched), never touches the network, refuses encodings other than UTF-8, and gives the tree
/// exactly as the bytes say it (no blank-node removal, which would change digests).
final class XMLTree {
    let doc: xmlDocPtr

    private init(doc: xmlDocPtr) { self.doc = doc }
    deinit { xmlFreeDoc(doc) }

    /// Largest document the parser is handed; callers apply their own, smaller, limits first.
    static let maximumSize = 1 << 20

    /// `checked: false` skips the byte scans (for the benchmark's bare baseline only).
    static func parse(_ bytes: [UInt8], what: String = "document", checked: Bool = true) throws -> XMLTree {
        try XMLLibrary.require()
        guard bytes.count <= maximumSize else {
            throw VerificationError(check: "size", reason: "\(what) larger than \(maximumSize) bytes")
        }
        // libxml2 has no option that refuses a DTD, so refuse it here, before parsing. A NUL byte
        // means UTF-16 or UTF-32, whose markup a byte scan could not see: refused as well.
        if checked, bytes.contains(0) {
            throw VerificationError(check: "xml", reason: "\(what) is not UTF-8")
        }
        if checked, containsDeclaration(bytes) {
            throw VerificationError(check: "xml", reason: "\(what) has a document type declaration (DOCTYPE or ENTITY)")
        }
        // IGNORE_ENC: the bytes are UTF-8 whatever the declaration says (a UTF-7 declaration could
        // otherwise hide markup from the byte scan).
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue
            | XML_PARSE_NOCDATA.rawValue | XML_PARSE_IGNORE_ENC.rawValue)
        guard let context = xmlNewParserCtxt() else {
            throw VerificationError(check: "internal", reason: "out of memory")
        }
        defer { xmlFreeParserCtxt(context) }
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { chars in
                xmlCtxtReadMemory(context, chars, Int32(buffer.count), nil, "UTF-8", options)
            }
        }
        guard let parsed else {
            throw VerificationError(check: "xml", reason: "\(what) is not well-formed XML")
        }
        let tree = XMLTree(doc: parsed)
        // A second line of defence: whatever the scan missed, no DTD of any kind may have been read.
        guard parsed.pointee.intSubset == nil, parsed.pointee.extSubset == nil else {
            throw VerificationError(check: "xml", reason: "\(what) has a document type declaration")
        }
        // Values are read into Swift strings, compared and hashed before any signature is checked
        // (IDs, for one), in time that grows with the square of a run of combining marks.
        if checked, mightHoldMarks(bytes), !isStreamSafe(xmlDocGetRootElement(parsed)) {
            throw VerificationError(check: "xml", reason: "\(what) has text running more than \(StreamSafeText.maximumRun) combining marks together")
        }
        return tree
    }

    /// Whether the document could hold a combining mark at all: a character from U+0300 up (whose
    /// UTF-8 starts with a byte of 0xCC or more) or a character reference (`&#`). Most documents
    /// hold neither, and then the tree need not be walked.
    static func mightHoldMarks(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return false }
            let n = buffer.count
            var i = ASCIIScan.nextNonASCII(buffer, from: 0)
            while i < n {
                if base[i] >= 0xCC { return true }
                i = ASCIIScan.nextNonASCII(buffer, from: i + 1)
            }
            // Then every "&": is it a character reference?
            var p = base
            let end = base + n
            while p < end, let found = memchr(p, Int32(UInt8(ascii: "&")), end - p) {
                let at = UnsafePointer(found.assumingMemoryBound(to: UInt8.self))
                if at + 1 < end, at[1] == UInt8(ascii: "#") { return true }
                p = at + 1
            }
            return false
        }
    }

    /// Whether everything under `root` that is ever read as a Swift string is stream-safe
    /// (`StreamSafeText`): element and attribute names, namespace names, each attribute's value and
    /// each element's text, read as `text()` reads it (its text pieces joined across comments and
    /// processing instructions, character references expanded). Walks the tree without recursion.
    static func isStreamSafe(_ root: xmlNodePtr?) -> Bool {
        func feed(_ run: inout StreamSafeText.Run, _ content: UnsafePointer<xmlChar>?) -> Bool {
            guard let content else { return true }
            return run.feed(utf8: UnsafeBufferPointer(start: content, count: Int(xmlStrlen(content))))
        }
        func alone(_ content: UnsafePointer<xmlChar>?) -> Bool {
            var run = StreamSafeText.Run()
            return feed(&run, content)
        }
        var node = root
        while let n = node {
            if n.pointee.type == XML_ELEMENT_NODE {
                guard alone(n.pointee.name) else { return false }
                var namespace = n.pointee.nsDef
                while let ns = namespace {
                    guard alone(ns.pointee.href), alone(ns.pointee.prefix) else { return false }
                    namespace = ns.pointee.next
                }
                var attribute = n.pointee.properties
                while let a = attribute {
                    guard alone(a.pointee.name) else { return false }
                    var run = StreamSafeText.Run()
                    var value = a.pointee.children
                    while let v = value {
                        guard feed(&run, v.pointee.content) else { return false }
                        value = v.pointee.next
                    }
                    attribute = a.pointee.next
                }
                var run = StreamSafeText.Run()
                var child = n.pointee.children
                while let c = child {
                    switch c.pointee.type {
                    case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
                        guard feed(&run, c.pointee.content) else { return false }
                    case XML_COMMENT_NODE, XML_PI_NODE:
                        break  // skipped by `text()`, so the run goes on across them
                    default:
                        run = StreamSafeText.Run()
                    }
                    child = c.pointee.next
                }
            }
            // Depth first: the first child element, else the next sibling of the nearest ancestor
            // (up to `root`) that has one.
            if n.pointee.type == XML_ELEMENT_NODE, let child = n.pointee.children {
                node = child
                continue
            }
            var up: xmlNodePtr? = n
            node = nil
            while let u = up, u != root {
                if let next = u.pointee.next {
                    node = next
                    break
                }
                up = u.pointee.parent
            }
        }
        return true
    }

    /// Whether the bytes contain `<!DOCTYPE` or `<!ENTITY` in any letter case.
    static func containsDeclaration(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return false }
            let end = base + buffer.count
            var p = base
            // Jump from one "<" to the next (memchr reads many bytes at a time), then look closer.
            while p + 2 < end, let found = memchr(p, Int32(UInt8(ascii: "<")), end - p) {
                let at = UnsafePointer(found.assumingMemoryBound(to: UInt8.self))
                if at + 2 < end, at[1] == UInt8(ascii: "!") {
                    switch at[2] | 0x20 {
                    case UInt8(ascii: "d"): if matches(at + 2, end, "doctype") { return true }
                    case UInt8(ascii: "e"): if matches(at + 2, end, "entity") { return true }
                    default: break
                    }
                }
                p = at + 1
            }
            return false
        }
    }

    /// Whether the bytes at `p` (before `end`) spell `word` in any letter case.
    private static func matches(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>, _ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard end - p >= n else { return false }
        for k in 0..<n where p[k] | 0x20 != word.utf8Start[k] { return false }
        return true
    }

    var root: XMLElement? {
        guard let node = xmlDocGetRootElement(doc) else { return nil }
        return XMLElement(node, in: self)
    }

    /// Every element of the document, in document order.
    func allElements() -> [XMLElement] {
        var out: [XMLElement] = []
        func walk(_ node: XMLElement) {
            out.append(node)
            for child in node.children { walk(child) }
        }
        if let root { walk(root) }
        return out
    }

    /// Serializes the whole document (as libxml2 writes it, UTF-8).
    func serialized() -> [UInt8] {
        var memory: UnsafeMutablePointer<xmlChar>?
        var size: Int32 = 0
        xmlDocDumpMemoryEnc(doc, &memory, &size, "UTF-8")
        guard let memory else { return [] }
        defer { gh_xml_free(memory) }
        return Array(UnsafeBufferPointer(start: memory, count: Int(size)))
    }
}

/// An element of an `XMLTree`; never leaves this module. It holds its tree, so the libxml2 node it
/// points into lives at least as long as it does (an optimizer may end a local's lifetime at its last
/// use, and the tree's `deinit` frees every node).
struct XMLElement {
    let node: xmlNodePtr
    let tree: XMLTree
    init(_ node: xmlNodePtr, in tree: XMLTree) {
        self.node = node
        self.tree = tree
    }

    var localName: String { String(cString: node.pointee.name) }
    var namespace: String? { node.pointee.ns.flatMap { $0.pointee.href.map { String(cString: $0) } } }

    /// Whether this element is `name` in namespace `ns`.
    func `is`(_ ns: StaticString, _ name: StaticString) -> Bool {
        guard let href = node.pointee.ns?.pointee.href else { return false }
        return equals(node.pointee.name, name) && equals(href, ns)
    }

    /// Child elements, in order (text, comments and processing instructions skipped).
    var children: [XMLElement] {
        var out: [XMLElement] = []
        var child = node.pointee.children
        while let c = child {
            if c.pointee.type == XML_ELEMENT_NODE { out.append(XMLElement(c, in: tree)) }
            child = c.pointee.next
        }
        return out
    }

    func children(_ ns: StaticString, _ name: StaticString) -> [XMLElement] {
        children.filter { $0.is(ns, name) }
    }

    var parent: XMLElement? {
        guard let p = node.pointee.parent, p.pointee.type == XML_ELEMENT_NODE else { return nil }
        return XMLElement(p, in: tree)
    }

    /// The value of the attribute `name` in no namespace, or nil.
    func attribute(_ name: StaticString) -> String? {
        var attr = node.pointee.properties
        while let a = attr {
            if a.pointee.ns == nil, equals(a.pointee.name, name) {
                return Self.text(of: a.pointee.children)
            }
            attr = a.pointee.next
        }
        return nil
    }

    /// The element's text: every text child joined, comments and processing instructions skipped
    /// (as exclusive canonicalization skips them, so the value read is the value signed). A child
    /// element is refused, so that no part of the value can hide in markup.
    func text() throws -> String {
        var out = ""
        var child = node.pointee.children
        while let c = child {
            switch c.pointee.type {
            case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
                if let content = c.pointee.content { out += String(cString: content) }
            case XML_COMMENT_NODE, XML_PI_NODE:
                break
            default:
                throw VerificationError(check: "structure", reason: "<\(localName)> holds markup where text was expected")
            }
            child = c.pointee.next
        }
        return out
    }

    /// `text()`, trimmed of XML whitespace (space, tab, CR, LF), for values such as URIs and
    /// identifiers.
    func trimmedText() throws -> String {
        let t = try text()
        let utf8 = t.utf8
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        guard let first = utf8.firstIndex(where: { !isSpace($0) }), let last = utf8.lastIndex(where: { !isSpace($0) }) else { return "" }
        if first == utf8.startIndex, last == utf8.index(before: utf8.endIndex) { return t }
        return String(t[first...last])
    }

    /// The values of this element's ID-like attributes (`ID`, `Id`, `id` in no namespace, and
    /// `xml:id`), read without materialising the others.
    func idAttributeValues() -> [String] {
        var out: [String] = []
        var attr = node.pointee.properties
        while let a = attr {
            let isID: Bool
            if let ns = a.pointee.ns {
                isID = ns.pointee.href.map { equals($0, "http://www.w3.org/XML/1998/namespace") } ?? false && equals(a.pointee.name, "id")
            } else {
                isID = equals(a.pointee.name, "ID") || equals(a.pointee.name, "Id") || equals(a.pointee.name, "id")
            }
            if isID { out.append(Self.text(of: a.pointee.children)) }
            attr = a.pointee.next
        }
        return out
    }

    private static func text(of node: xmlNodePtr?) -> String {
        var out = ""
        var n = node
        while let c = n {
            if let content = c.pointee.content { out += String(cString: content) }
            n = c.pointee.next
        }
        return out
    }
}

private func equals(_ a: UnsafePointer<xmlChar>, _ b: StaticString) -> Bool {
    b.withUTF8Buffer { lit in
        var i = 0
        while i < lit.count {
            if a[i] != lit[i] { return false }
            i += 1
        }
        return a[i] == 0
    }
}
