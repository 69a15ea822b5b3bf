// Hand-kept to match `diesel print-schema` for the migrations in migrations/;
// the `schema_matches_database` test fails when a migration changes a column
// this file does not know about.

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        display_name -> Text,
        bio -> Nullable<Text>,
        password_hash -> Text,
        role -> Text,
        review_count -> Int4,
        follower_count -> Int4,
        following_count -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    titles (id) {
        id -> Int8,
        kind -> Text,
        name -> Text,
        release_year -> Nullable<Int4>,
        synopsis -> Nullable<Text>,
        genres -> Array<Text>,
        review_count -> Int4,
        rating_sum -> Int8,
        avg_rating -> Nullable<Float8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    reviews (id) {
        id -> Int8,
        title_id -> Int8,
        author_id -> Int8,
        rating -> Int2,
        body -> Text,
        contains_spoilers -> Bool,
        like_count -> Int4,
        comment_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    review_likes (review_id, user_id) {
        review_id -> Int8,
        user_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    comments (id) {
        id -> Int8,
        review_id -> Int8,
        author_id -> Int8,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    follows (follower_id, followee_id) {
        follower_id -> Int8,
        followee_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    platform_counters (name) {
        name -> Text,
        value -> Int8,
    }
}

diesel::joinable!(reviews -> titles (title_id));
diesel::joinable!(reviews -> users (author_id));
diesel::joinable!(comments -> reviews (review_id));
diesel::joinable!(review_likes -> reviews (review_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    titles,
    reviews,
    review_likes,
    comments,
    follows,
    platform_counters,
);
