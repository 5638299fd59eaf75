#if os(Linux)
public import SystemPackage

// Which errors of accept(2) belong to one connection, not to the listening socket.
//
// Linux passes a new connection's pending network error to accept(2) itself, and the connection is
// gone; its man page says to treat those errors as EAGAIN and accept again: for TCP/IP, ENETDOWN,
// EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP and ENETUNREACH, and EPERM when
// firewall rules forbid the connection; ECONNABORTED when the peer reset it first. None of them
// says anything about the next connection, so a server that stops on one stops for nothing.

/// Whether `error`, from accept(2), ends only the connection being accepted: accept again.
@inlinable package func system_acceptErrorIsTheConnections(_ error: Errno) -> Bool {
    switch error {
    case .interrupted, .connectionAbort, .protocolError, .networkDown, .protocolNotAvailable, .hostIsDown,
         .noRouteToHost, .notSupportedOnSocket, .networkUnreachable, .notPermitted, .timedOut:
        return true
    default:
        return error.rawValue == 64 // ENONET, which swift-system does not name
    }
}

#endif
