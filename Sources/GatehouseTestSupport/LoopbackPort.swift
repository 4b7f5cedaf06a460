import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Free TCP ports on 127.0.0.1 for servers that must know their URL before they start.
public enum LoopbackPort {
    /// Ports already handed out in this process: the kernel may offer a released port again, and
    /// two servers of one test run must never be given the same one.
    private static let handedOut = Mutex<Set<Int>>([])

    /// Binds port 0, reads the port the kernel chose, and releases it; never the same port twice
    /// in one process.
    public static func pick() throws -> Int {
        for _ in 0..<50 {
            let port = try pickOnce()
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw LoopbackPortError()
    }

    private static func pickOnce() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackPortError() }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw LoopbackPortError() }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let got = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard got == 0 else { throw LoopbackPortError() }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Waits (up to 10 s) until something accepts connections on the port.
    public static func waitUntilListening(_ port: Int) async throws {
        for _ in 0..<200 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
            close(fd)
            if ok { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LoopbackPortError()
    }
}

public struct LoopbackPortError: Error {}
