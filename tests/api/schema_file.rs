//! schema.graphql stays what the server serves, and covers the contract.

use std::collections::BTreeMap;

use async_graphql::parser::{
    parse_schema,
    types::{TypeKind, TypeSystemDefinition},
};

const REGENERATE: &str = "cargo run -q -- schema > schema.graphql";

#[test]
fn schema_file_matches_served_sdl() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let served = nexora::graphql::schema::sdl();
    assert!(
        on_disk == served,
        "schema.graphql is out of date; regenerate it with `{REGENERATE}`"
    );
}

/// type name → field name → (type, sorted "arg: Type" list)
fn shape(sdl: &str) -> BTreeMap<String, BTreeMap<String, (String, Vec<String>)>> {
    let doc = parse_schema(sdl).expect("parse SDL");
    let mut out = BTreeMap::new();
    for def in doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let t = t.node;
        let mut fields = BTreeMap::new();
        match t.kind {
            TypeKind::Object(o) => {
                for f in o.fields {
                    let mut args: Vec<String> = f
                        .node
                        .arguments
                        .iter()
                        .map(|a| {
                            let default = a
                                .node
                                .default_value
                                .as_ref()
                                .map(|d| format!(" = {}", d.node))
                                .unwrap_or_default();
                            format!("{}: {}{default}", a.node.name.node, a.node.ty.node)
                        })
                        .collect();
                    args.sort();
                    fields.insert(
                        f.node.name.node.to_string(),
                        (f.node.ty.node.to_string(), args),
                    );
                }
            }
            TypeKind::Interface(i) => {
                for f in i.fields {
                    fields.insert(
                        f.node.name.node.to_string(),
                        (f.node.ty.node.to_string(), vec![]),
                    );
                }
            }
            TypeKind::InputObject(i) => {
                for f in i.fields {
                    fields.insert(
                        f.node.name.node.to_string(),
                        (f.node.ty.node.to_string(), vec![]),
                    );
                }
            }
            TypeKind::Enum(e) => {
                for v in e.values {
                    fields.insert(v.node.value.node.to_string(), (String::new(), vec![]));
                }
            }
            _ => {}
        }
        out.insert(t.name.node.to_string(), fields);
    }
    out
}

#[test]
fn served_schema_contains_the_contract_api() {
    let contract_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/api/contract.graphql");
    let contract = std::fs::read_to_string(&contract_path).unwrap_or_else(|e| {
        panic!(
            "the API contract must sit at {}: {e}",
            contract_path.display()
        )
    });
    let contract = shape(&contract);
    let served = shape(&nexora::graphql::schema::sdl());
    let mut missing = vec![];
    for (ty, fields) in &contract {
        let Some(have) = served.get(ty) else {
            missing.push(format!("type {ty}"));
            continue;
        };
        for (name, want) in fields {
            match have.get(name) {
                Some(got) if got == want => {}
                Some(got) => {
                    missing.push(format!("{ty}.{name}: contract {want:?}, served {got:?}"))
                }
                None => missing.push(format!("{ty}.{name}")),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the served schema breaks the contract:\n{}",
        missing.join("\n")
    );
}

#[test]
fn readme_documents_every_environment_variable() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README");
    for (name, ..) in nexora::config::ENV_VARS {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not document {name}"
        );
    }
}
