//! What a field costs in the complexity limit (`GRAPHQL_MAX_COMPLEXITY`),
//! checked before anything executes. Plain fields cost 1 plus their
//! selection (async-graphql's default). On top of that:
//!
//! - a list multiplies its selection by the page size asked for, so
//!   `feed(first: 100)` with a dozen nested fields costs about 1,300 while
//!   nesting lists inside lists adds up fast;
//! - every root query field is an entry point with its own statement or
//!   loader batch, so it costs [`ROOT`]: a document of 2,000 aliases fails the
//!   limit whatever they select;
//! - a mutation field is a transaction, a rate-limit check and an
//!   invalidation: [`WRITE`]; sign-up and sign-in run argon2 (tens of
//!   milliseconds of CPU each) and are not rate limited per user:
//!   [`ACCOUNT`], so one request can hold only a handful.
//!
//! Results saturate at [`CAP`] so sums of nested lists cannot overflow.

/// Base cost of a root query field.
pub const ROOT: usize = 10;
/// Base cost of a mutation field.
pub const WRITE: usize = 100;
/// Base cost of `signUp` / `logIn`.
pub const ACCOUNT: usize = 500;
/// Ceiling of any one field's cost (far above any limit, far below overflow).
pub const CAP: usize = 1 << 40;

/// A page of `first` items (`default` when absent; clamped to what
/// `page_size` accepts), each costing `child`.
pub fn list(first: Option<i32>, default: i32, child: usize) -> usize {
    let n = first
        .unwrap_or(default)
        .clamp(0, super::connection::MAX_PAGE);
    many(usize::try_from(n).unwrap_or(0), child)
}

/// `n` items each costing `child` (at least 1 each, so an empty selection
/// is not free).
pub fn many(n: usize, child: usize) -> usize {
    n.saturating_mul(child.max(1)).min(CAP)
}

/// `base` plus a selection.
pub fn plus(base: usize, child: usize) -> usize {
    base.saturating_add(child).min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_multiply_and_saturate() {
        assert_eq!(list(None, 20, 3), 60);
        assert_eq!(list(Some(500), 20, 3), 300);
        assert_eq!(list(Some(-4), 20, 3), 0);
        assert_eq!(many(usize::MAX, usize::MAX), CAP);
        assert_eq!(plus(CAP, CAP), CAP);
    }
}
