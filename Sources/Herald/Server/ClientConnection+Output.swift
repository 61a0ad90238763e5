// Everything the layers above queue to a client goes through these entry points. They differ
// in two ways, and each says which:
// - Dropped or not: a pub/sub *delivery* is dropped (and counted, and reported to the client
//   later as `dropped`) when the client's queue is over `--max-outbound`; an *answer* (to a
//   request or op, a notice, a control frame) is never dropped, since the client waits for it.
// - Counted or not: deliveries and stream entries count in `deliveredCount`; answers do not.
// Lossless senders (stream readers) check `hasRoom` first, or use `sendEntry`, which does.

extension ClientConnection {
    /// The form this connection's messages take (an HTTP connection gets none of these).
    var form: WireForm { wire == .eventStream ? .eventStream : .webSocket }

    /// An answer or notice as JSON, in this connection's wire form (a text frame or an event):
    /// never dropped, not counted.
    public func sendMessage(_ json: [UInt8]) {
        if case .webSocket(let ws) = state, let windowBits = ws.deflateWindowBits {
            sendData(.text, json, windowBits: windowBits)
        } else {
            send(form.message(json))
        }
    }

    /// A text or binary message to a WebSocket client, compressed when it agreed to
    /// permessage-deflate and the message is at least `--compression-min` bytes: never dropped,
    /// not counted.
    public func sendData(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        if case .webSocket(let ws) = state, let windowBits = ws.deflateWindowBits {
            sendData(opcode, payload, windowBits: windowBits)
        } else {
            send(FrameEncoder.encode(opcode, payload))
        }
    }

    private func sendData(_ opcode: WebSocketOpcode, _ payload: [UInt8], windowBits: Int) {
        guard !isClosed else { return }
        let frame = context.compressor.frame(opcode, payload, windowBits: windowBits)
        countIfCompressed(frame, plainBytes: payload.count + FrameEncoder.headerLength(ofFrame: frame))
        outbound.append(frame)
        scheduleFlush()
    }

    /// A message many clients get, in this connection's wire form, the chunk shared with all of
    /// them: never dropped (its senders check `hasRoom`), counted.
    func sendMessage(_ message: SharedMessage) {
        guard case .webSocket(let ws) = state, let windowBits = ws.deflateWindowBits else {
            send(form.message(message))
            return
        }
        let frame = message.deflatedFrame(windowBits: windowBits, compressor: context.compressor)
        countIfCompressed(frame, plainBytes: message.json.count + FrameEncoder.headerLength(ofFrame: frame))
        send(frame)
    }

    /// Counts a queued frame for the compression metrics when it went compressed (RSV1 set; a
    /// message under `--compression-min` goes plain): its bytes, and `plainBytes`, what it would
    /// have taken uncompressed.
    private func countIfCompressed(_ frame: Chunk, plainBytes: Int) {
        guard frame.base.load(as: UInt8.self) & FrameEncoder.rsv1 != 0 else { return }
        context.compressedBytes += frame.count
        context.uncompressedBytes += plainBytes
    }

    /// An encoded frame or event (a control frame, an answer): never dropped, not counted.
    public func send(_ frame: [UInt8]) {
        guard !isClosed else { return }
        outbound.append(Chunk.of(frame))
        scheduleFlush()
    }

    /// A shared stream-entry chunk the sender checked room for: never dropped, counted.
    private func send(_ frame: Chunk) {
        guard !isClosed else { return }
        outbound.append(frame)
        context.deliveredCount += 1
        scheduleFlush()
    }

    /// Whether `bytes` more fit in this client's outbound queue (lossless senders check first).
    public func hasRoom(for bytes: Int) -> Bool {
        !isClosed && outbound.byteCount + bytes <= context.config.maxOutbound
    }

    /// A stream entry in this connection's wire form if it fits in the outbound queue (counted);
    /// false, and nothing sent, when it does not, so lossless readers can catch up later. With
    /// `checkedRoom` the sender already made sure a whole page fits: the entry always goes.
    @discardableResult
    public func sendEntry(_ entry: StreamEntry, checkedRoom: Bool = false) -> Bool {
        let chunk = form.entry(entry)
        guard checkedRoom || hasRoom(for: chunk.count) else { return false }
        send(chunk)
        return true
    }

    /// A pub/sub delivery in this connection's wire form (JSON envelope or raw), each form
    /// encoded once for all its subscribers: dropped when the queue is full (or the client is
    /// closed under `--slow-consumer close`), counted when queued. Nothing is delivered after
    /// Herald's WebSocket close frame.
    public func deliver(_ delivery: Delivery, raw: Bool) {
        guard !isClosed else { return }
        switch state {
        case .http:
            return
        case .webSocket(let ws):
            guard !ws.control.closeSent else { return }
            let plain = WireForm.webSocket.delivery(delivery, raw: raw)
            var frame = plain
            if let windowBits = ws.deflateWindowBits {
                frame = delivery.deflatedFrame(raw: raw, windowBits: windowBits, compressor: context.compressor)
            }
            if enqueueDelivery(frame) {
                if frame !== plain { countIfCompressed(frame, plainBytes: plain.count) }
            } else {
                if context.config.slowConsumerPolicy == .close {
                    closeWebSocket(code: CloseCode.policyViolation, reason: "too slow: the outbound queue is full")
                } else {
                    ws.droppedUnreported += 1
                }
            }
        case .eventStream(let es):
            if !enqueueDelivery(WireForm.eventStream.delivery(delivery, raw: raw)) {
                if context.config.slowConsumerPolicy == .close { close() } else { es.droppedUnreported += 1 }
            }
        }
    }

    /// Queues `frame` unless it does not fit, in which case the drop is counted and false
    /// returned for the wire to handle.
    private func enqueueDelivery(_ frame: Chunk) -> Bool {
        if outbound.byteCount + frame.count > context.config.maxOutbound {
            context.droppedCount += 1
            return false
        }
        outbound.append(frame)
        context.deliveredCount += 1
        scheduleFlush()
        return true
    }
}
