//! The docs stay true: every variable the configuration reads is in
//! `.env.example` (with a value line) and in the README's table.

use pronghorn_db::VARIABLES;

fn read(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_variable_is_documented() {
    let example = read(".env.example");
    let readme = read("README.md");
    for var in VARIABLES {
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{var}="))),
            "{var} is missing from .env.example"
        );
        assert!(
            readme.contains(&format!("`{var}`")),
            "{var} is missing from the README"
        );
    }
    for var in [
        "SEED_PASSWORD",
        "APP_ENV",
        "NODE_ENV",
        "HOST",
        "PORT",
        "API_BASE_PATH",
        "SESSION_SECRET",
        "HEALTH_TOKEN",
        "RATE_LIMIT_WINDOW_MS",
        "RATE_LIMIT_MAX_REQUESTS",
    ] {
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{var}="))),
            "{var} is missing from .env.example"
        );
    }
}
