import Multiprocessing

/// A distributed actor hosted by the server; `box` is nil until the actor system has it ready.
internal final class ActorState {
    internal var box: (any ManagedActorBox)?
}

extension ManagerServer {
    internal func serve(_ request: ActorRequest, _ object: ServerObject, _ state: ActorState) throws -> ActorReply {
        switch request {
        case .call(let target, let generics, let arguments):
            // The call runs outside the table lock: the actor's method may take its time.
            guard let box = try locked(object, { state.box }) else {
                throw MultiprocessingError(.notFound, "Object \(object.id) is not a live actor.")
            }
            return .call(result: try box.invoke(target: target, genericSubstitutions: generics, arguments: arguments))
        case .resolve:
            try locked(object) {}
            return .resolve
        }
    }
}
