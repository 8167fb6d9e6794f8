//! Attribute values of the server layer, built once and reused: the
//! service, each gRPC method, each caller identity, each status code.

use tonic::Code;

/// The `grpc.method` value of a request path (`/package.Service/Method` ->
/// `package.Service/Method`).
pub(super) fn method_name(path: &str) -> &str {
    path.strip_prefix('/').unwrap_or(path)
}

/// A status code's canonical name, as gRFC A66 labels it (`OK`,
/// `UNAVAILABLE`, ...): [`crate::metrics::code_name`] for a [`Code`].
pub fn code_name(code: Code) -> &'static str {
    crate::metrics::code_name(u32::try_from(i32::from(code)).unwrap_or(2))
}

/// The `grpc-status` in `headers` (response headers of a trailers-only
/// answer, or trailers), if any. A value that is not a number is UNKNOWN,
/// as gRPC clients read it.
pub(super) fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    crate::channel::grpc_status(headers).map(|c| Code::from(i32::try_from(c).unwrap_or(2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_statuses_and_methods() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(
            method_name("/helloworld.Greeter/SayHello"),
            "helloworld.Greeter/SayHello"
        );
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&h), Some(Code::Unavailable));
        h.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(grpc_status(&h), Some(Code::Unknown));
    }
}
