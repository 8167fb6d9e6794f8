//! Tests of parsing, validation, environment and rendering, end to end.

use super::*;

const EXAMPLE: &str = include_str!("../../../examples/mesh.yaml");

fn yaml(text: &str) -> Result<MeshConfig, ConfigErrors> {
    parse_str(text, Format::Yaml, "mesh.yaml")
}

#[test]
fn example_parses() {
    let cfg = yaml(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.summary().to_string(),
        "5 services, 5 endpoints, 5 routes, 3 intentions, 1 gateway"
    );
}

#[test]
fn example_round_trips_through_json() {
    let cfg = yaml(EXAMPLE).unwrap();
    let text = serde_json::to_string_pretty(&cfg.to_json()).unwrap();
    let back =
        parse_str(&text, Format::Json, "mesh.json").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, cfg);
}
