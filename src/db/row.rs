//! `(a, b) < (x, y)` and `(a, b) > (x, y)` as diesel expressions.
//!
//! Keyset pagination needs row comparisons: Postgres turns them into an
//! index range, where the equivalent `a < x OR (a = x AND b < y)` scans from
//! the top of the index and filters (32 ms instead of 0.2 ms for a cursor
//! half-way through 100k reviews). Diesel has no row comparison, and a raw
//! `sql` fragment would opt the whole statement out of the prepared-statement
//! cache; these types keep it cacheable.

use diesel::{
    expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping},
    pg::Pg,
    query_builder::{AstPass, QueryFragment, QueryId},
    result::QueryResult,
    sql_types::Bool,
};

macro_rules! row_cmp {
    ($name:ident, $op:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, QueryId, ValidGrouping)]
        pub struct $name<A, B, X, Y> {
            a: A,
            b: B,
            x: X,
            y: Y,
        }

        impl<A, B, X, Y> $name<A, B, X, Y> {
            /// Compares `(a, b)` with `(x, y)`.
            pub fn new(a: A, b: B, x: X, y: Y) -> Self {
                Self { a, b, x, y }
            }
        }

        impl<A, B, X, Y> Expression for $name<A, B, X, Y>
        where
            A: Expression,
            B: Expression,
            X: Expression,
            Y: Expression,
        {
            type SqlType = Bool;
        }

        impl<A, B, X, Y, QS> AppearsOnTable<QS> for $name<A, B, X, Y>
        where
            A: AppearsOnTable<QS>,
            B: AppearsOnTable<QS>,
            X: AppearsOnTable<QS>,
            Y: AppearsOnTable<QS>,
            Self: Expression,
        {
        }

        impl<A, B, X, Y, QS> SelectableExpression<QS> for $name<A, B, X, Y>
        where
            A: SelectableExpression<QS>,
            B: SelectableExpression<QS>,
            X: SelectableExpression<QS>,
            Y: SelectableExpression<QS>,
            Self: AppearsOnTable<QS>,
        {
        }

        impl<A, B, X, Y> QueryFragment<Pg> for $name<A, B, X, Y>
        where
            A: QueryFragment<Pg>,
            B: QueryFragment<Pg>,
            X: QueryFragment<Pg>,
            Y: QueryFragment<Pg>,
        {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                out.push_sql("((");
                self.a.walk_ast(out.reborrow())?;
                out.push_sql(", ");
                self.b.walk_ast(out.reborrow())?;
                out.push_sql(concat!(") ", $op, " ("));
                self.x.walk_ast(out.reborrow())?;
                out.push_sql(", ");
                self.y.walk_ast(out.reborrow())?;
                out.push_sql("))");
                Ok(())
            }
        }
    };
}

row_cmp!(
    RowLt,
    "<",
    "`(a, b) < (x, y)`: strictly after, in a descending order."
);
row_cmp!(
    RowGt,
    ">",
    "`(a, b) > (x, y)`: strictly after, in an ascending order."
);
