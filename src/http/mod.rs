//! HTTP layer.

/// The request id of the request being handled (or `-` outside one).
pub fn current_request_id() -> String {
    "-".into()
}
