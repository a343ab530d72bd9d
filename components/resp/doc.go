// Package resp is redisha's one RESP stack: everything the project parses or
// writes in the Redis protocol itself goes through it, so a parsing bug is
// fixed once and fuzzed once. go-redis stays where a full client library is the
// right tool: workload clients and tests that play a user.
//
// The parts, from values to connections:
//
//   - Value, Reader, Writer: decode any RESP2/RESP3 value or client command
//     (Reader.ReadValue, Reader.ReadCommand) and encode replies in the
//     protocol a client negotiated (Writer).
//   - Framer: finds client request boundaries in a byte stream without
//     allocating and without keeping the bytes (multibulk arrays, which RESP3
//     clients send too, and inline commands). It reports each request's size,
//     argument count and first CapturedArgs arguments (the command name as a
//     sub-slice of the caller's buffer, compared with Request.Is / EqualFold),
//     resumes across reads split at any byte, lets large payloads be skipped
//     (Skippable, Skip) so they can be spliced, and enforces redis' limits
//     with typed errors carrying redis' own texts: proto-max-bulk-len,
//     INT_MAX arguments, 64 KiB inline lines, and the pre-authentication
//     limits of 10 arguments and 16 KiB per argument (SetPreAuth). It is the
//     proxy's data-path framer and the durable mode's request counter.
//   - ReplyFramer: the same for server replies, every RESP2 and RESP3 type,
//     nested aggregates, push frames (>) and attributes (|, counted with the
//     value they decorate): it counts complete replies and reports each one's
//     size, kind and integer value, so a proxy can count replies, pass pushes
//     through and strip one reply (WAIT's) without decoding anything.
//   - Conn: a minimal client connection for the project's own links (the
//     proxy's health probes, the witness's links to redis and sentinels, test
//     set-up): Dial with timeouts, AUTH or HELLO 3, Do honouring context
//     deadlines and cancellation, pipelining (Send, Flush, Receive), pub/sub
//     (Subscribe, PSubscribe, ReceiveMessage; RESP2 arrays and RESP3 pushes),
//     a bounded reply size. Any I/O error, protocol error, deadline or
//     cancellation breaks the Conn (it would be out of step); an error reply
//     does not.
//   - ParseInfo, ParseFields: INFO text.
//
// Hostile input: every parser bounds what a peer can make it allocate or
// scan (Limits): lengths are checked before anything is read, large strings
// grow with the bytes that really arrive, nesting is bounded, lines are
// bounded. The framers are as strict as redis-server or stricter, never laxer,
// so a proxy framing with them cannot fall out of step with the server.
//
// Tests: fuzz targets for every parser are seeded from traffic captured from
// real redis-server, redis-sentinel, redis-cli, redis-benchmark and HAProxy
// (testdata/README); the framers' targets check that a stream split at random
// points frames as it does whole and that every boundary matches the Reader.
// Conn is tested against real redis-server and redis-sentinel processes.
package resp
