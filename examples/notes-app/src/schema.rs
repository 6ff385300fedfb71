// @generated automatically by Diesel CLI.

diesel::table! {
    notes (id) {
        id -> Uuid,
        author_id -> Uuid,
        #[max_length = 200]
        title -> Varchar,
        written_at -> Timestamptz,
    }
}
