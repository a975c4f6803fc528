//! Any bytes a client can send as one request frame (after the length prefix) must decode to
//! a request or a `ProtocolError`, never a panic, an abort or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = weir_broker::protocol::decode_request(bytes::Bytes::copy_from_slice(data));
});
