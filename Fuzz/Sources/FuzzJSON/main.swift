// Fuzz target: the JSON parser and writer (JSONValue.parse, JSONValue.serialized, JSONWriter)
// behind every POST /publish body and every WebSocket control message, and the envelopes that
// carry client- and Redis-supplied text back out (Envelope).
//
// Invariants, for any input that parses:
//   parse(serialize(v)) == v, and serialize is a fixed point (serialize(parse(serialize(v))) is
//   the same bytes); the serialised text is valid UTF-8 without raw control characters.
// For any input at all (as a Redis payload and channel): the delivery envelope is JSON whose
// "data" gives back the exact payload (directly, or base64 when it is not UTF-8).
import Foundation
import FuzzSupport
import Herald

func checkRoundTrip(_ value: JSONValue, source: [UInt8]) {
    let text = value.serialized
    invariant(UTF8Validation.isValid(text), "serialised JSON is not UTF-8: \(describe(text))")
    var inString = false
    var escaped = false
    for b in text {
        if inString {
            invariant(b >= 0x20 && b != 0x7F, "raw control byte \(b) inside a serialised string: \(describe(text))")
            if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
        } else {
            invariant(b > 0x20, "whitespace or control outside strings in compact JSON: \(describe(text))")
            if b == UInt8(ascii: "\"") { inString = true }
        }
    }
    do {
        let again = try JSONValue.parse(text)
        invariant(again == value, "parse(serialize(v)) != v for input \(describe(source)); serialised \(describe(text))")
        invariant(again.serialized == text, "serialisation is not a fixed point: \(describe(text)) then \(describe(again.serialized))")
    } catch {
        invariant(false, "serialised JSON does not parse (\(error)): \(describe(text)) from input \(describe(source))")
    }
}

/// The control-message path: fields read the way SubscriberSession and PublishAPI read them,
/// and the answer (with the client's `id`) must parse and carry the same `id`.
func checkControlMessage(_ value: JSONValue) {
    let id = value["id"]
    let op = value["op"]?.stringValue ?? "error"
    var names: [String] = []
    for key in ["channels", "patterns", "shards"] {
        if let items = value[key]?.arrayValue { names += items.compactMap(\.stringValue) }
    }
    for key in ["channel", "pattern", "message"] {
        if let s = value[key]?.stringValue { names.append(s) }
    }
    if let messages = value["messages"]?.arrayValue {
        for m in messages { _ = (m["channel"]?.stringValue, m["message"]?.serialized, m["sharded"]?.boolValue) }
    }
    let answer = Envelope.subscribed(op, kind: .channel, names: names, id: id)
    do {
        let back = try JSONValue.parse(answer)
        invariant(back["type"]?.stringValue == op, "answer type lost: \(describe(answer))")
        invariant(back["id"] == id, "id lost in the answer: \(describe(answer))")
        invariant(back["names"]?.arrayValue?.compactMap(\.stringValue) == names, "names lost in the answer: \(describe(answer))")
    } catch {
        invariant(false, "answer is not JSON (\(error)): \(describe(answer))")
    }
    let error = Envelope.error(code: "bad_request", message: op, id: id)
    invariant((try? JSONValue.parse(error))?["message"]?.stringValue == op, "error answer does not carry its message")
}

/// A Redis message with arbitrary bytes as payload (and channel/pattern): the envelope must be
/// JSON, and must give the exact payload back.
func checkDelivery(_ input: [UInt8]) {
    let cut = input.firstIndex(of: 0) ?? min(input.count, 8)
    let channel = Array(input[..<cut])
    let payload = Array(input[cut...])
    for kind in SubscriptionKind.allCases {
        let delivery = Delivery(kind: kind, channel: channel, pattern: kind == .pattern ? channel : nil, payload: payload)
        let envelope = Envelope.delivery(delivery)
        do {
            let json = try JSONValue.parse(envelope)
            guard let data = json["data"]?.stringValue else { invariant(false, "no data in \(describe(envelope))"); return }
            if json["encoding"]?.stringValue == "base64" {
                invariant(!UTF8Validation.isValid(payload), "a UTF-8 payload was base64-encoded")
                invariant(Data(base64Encoded: data).map(Array.init) == payload, "base64 data does not decode to the payload")
            } else {
                invariant(json["encoding"] == nil, "unknown encoding in \(describe(envelope))")
                invariant(Array(data.utf8) == payload, "data is not the payload: \(describe(envelope)) vs \(describe(payload))")
            }
            invariant(json["channel"]?.stringValue != nil, "no channel in \(describe(envelope))")
        } catch {
            invariant(false, "delivery envelope is not JSON (\(error)): \(describe(envelope))")
        }
        invariant(delivery.jsonFrame.count > envelope.count, "JSON frame shorter than its envelope")
        invariant(delivery.rawFrame.count >= payload.count, "raw frame shorter than its payload")
    }
}

runFuzzer { data, size in
    let input = bytes(data, size)
    if let value = try? JSONValue.parse(input) {
        checkRoundTrip(value, source: input)
        checkControlMessage(value)
    }
    checkDelivery(input)
    return 0
}
