//! Flow pipeline (placeholder).
pub fn run(_: &std::path::Path, _: &std::path::Path) -> anyhow::Result<String> {
    Ok(String::new())
}
