// Package spop speaks SPOP 2.0, HAProxy's Stream Processing Offload
// Protocol, on the agent's side: the protocol a SPOE filter in HAProxy
// uses to ask an external agent (here, a WAF) about each request and to
// receive variables it then acts on with ordinary http-request rules.
//
// # The protocol
//
// HAProxy connects to the agent, reuses the connection for many streams
// and closes it when idle. Every frame is a 4-byte big-endian length, then
// a type byte, 4 bytes of flags (FIN, which every frame carries since
// fragmentation was deprecated; ABORT), a stream-id and a frame-id in
// HAProxy's own varint (AppendVarint; not protobuf's), and a payload:
//
//	HAPROXY-HELLO → AGENT-HELLO    version "2.0", max-frame-size (the agent
//	                               answers the smaller), capabilities
//	NOTIFY        → ACK            messages (name + typed args) → actions
//	                               (set-var / unset-var in a scope)
//	DISCONNECT    ↔ DISCONNECT     status-code and message, then close
//
// A HELLO with healthcheck=true comes from "option spop-check": the agent
// answers it and closes. Typed values (Value) are NULL, BOOL, INT32,
// UINT32, INT64, UINT64, IPV4, IPV6, STRING and BINARY; HAProxy sends a
// sample it cannot fetch as NULL and every integer sample as INT64.
// The reference is doc/SPOE.txt in HAProxy's sources; where it is silent
// this package follows src/flt_spoe.c (HAProxy 2.6) and src/mux_spop.c
// (3.1 and later).
//
// # Design
//
//   - Server is the library's centre: Serve(listener), a Handler that gets
//     one decoded NOTIFY and returns actions, Shutdown(ctx). The codec
//     below it (DecodeFrame, DecodeMessages, AppendAck, ...) is exported
//     for tests and tools that play HAProxy's side.
//   - Untrusted input is bounded before it costs anything: a frame length
//     over the negotiated max-frame-size is refused before allocation
//     (StatusTooBig), Limits caps the messages and arguments a frame may
//     make the decoders allocate, and every protocol error answers with
//     the DISCONNECT status doc/SPOE.txt assigns to it.
//   - Decoding copies a payload once into a string that every name and
//     value shares: values may be kept after the handler returns (nothing
//     is reused under them) and a NOTIFY costs three allocations.
//   - Pipelining is announced when HAProxy offers it: each NOTIFY is
//     handled in its own goroutine (at most MaxInFlight per connection,
//     after which the connection stops reading), and each ACK, which
//     repeats its own frame's ids, is written whole under a mutex, so
//     ACKs may leave in any order. "async" (ACKs on another connection) is
//     deprecated and never announced.
//   - A handler panic or error does not end the connection: the frame is
//     ACKed with ErrorActions (none by default), so other streams sharing
//     the connection are unaffected. To fail closed, make ErrorActions set
//     a variable the HAProxy configuration denies on.
//   - Fragmented frames (no FIN) are refused with StatusFragmentation;
//     the agent never announces the capability, so HAProxy never sends
//     them.
//
// # What HAProxy does not say
//
// With "option http-buffer-request" HAProxy waits for the body only up to
// its buffer (tune.bufsize): a longer body arrives cut, with nothing in
// the frame to say so. Send req.body_size next to req.body and treat a
// shorter body as unseen. A message that does not fit max-frame-size
// (two copies of the body, say) never reaches the agent: HAProxy 2.6
// tries to fragment it, which the agent did not accept, and the stream
// waits out "timeout processing" before "option set-on-error" reports a
// timeout (1), not "too big" (3). Like every SPOE error it fails open
// unless the configuration denies on it.
package spop
