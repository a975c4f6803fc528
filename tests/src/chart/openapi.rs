//! kubeconform schemas from an API server's OpenAPI v2 document (`/openapi/v2`), so the
//! rendered chart is validated against exactly what the test apiserver serves (built-in kinds
//! of its version, and the installed CRDs) and never against schemas from elsewhere.
//!
//! For each wanted group/version/kind, the definition carrying that
//! `x-kubernetes-group-version-kind` becomes one standalone JSON schema (draft 4, kubeconform's
//! default): the definition itself plus, under `definitions`, every definition it reaches
//! through `$ref` (the refs stay `#/definitions/...`, so recursive types need no inlining).
//! Written to `<dir>/<group or v1>/<kind in lower case>-<version>.json`, which
//! [`SCHEMA_LOCATION`] names for kubeconform.
//!
//! What OpenAPI v2 says differently from JSON schema is translated:
//! - `format: int-or-string` (IntOrString, `x-kubernetes-int-or-string`) accepts an integer
//!   or a string; `Quantity` a string or a number;
//! - strict: objects with `properties` get `additionalProperties: false` (unknown fields are
//!   errors, as `kubectl apply --validate=strict` has them), except where the schema says
//!   unknown fields are kept (`x-kubernetes-preserve-unknown-fields`) or combines schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Map, Value};

/// kubeconform's `-schema-location` for a directory written by [`write_schemas`]
/// (`{dir}` replaced by the directory).
pub const SCHEMA_LOCATION: &str =
    "{dir}/{{ .Group }}/{{ .ResourceKind }}-{{ .ResourceAPIVersion }}.json";

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// A group/version/kind; `group` is empty for the core group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    /// From a manifest's `apiVersion` and `kind`.
    pub fn of(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// Where kubeconform looks for this kind's schema under the schema directory (its
    /// `.Group` is the part of apiVersion before the slash, `v1` for the core group).
    pub fn file_name(&self) -> String {
        let group = if self.group.is_empty() {
            self.version.as_str()
        } else {
            self.group.as_str()
        };
        format!("{group}/{}-{}.json", self.kind.to_lowercase(), self.version)
    }
}

/// The GVKs the document's definitions carry, with their definition names.
pub fn definitions_by_gvk(openapi: &Value) -> BTreeMap<Gvk, String> {
    let mut out = BTreeMap::new();
    let Some(defs) = openapi["definitions"].as_object() else {
        return out;
    };
    for (name, def) in defs {
        for gvk in def["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let field = |k: &str| gvk[k].as_str().unwrap_or_default().to_string();
            out.insert(
                Gvk {
                    group: field("group"),
                    version: field("version"),
                    kind: field("kind"),
                },
                name.clone(),
            );
        }
    }
    out
}

/// Writes one schema per wanted kind into `dir`; fails naming the kinds the document lacks.
pub fn write_schemas(openapi: &Value, wanted: &BTreeSet<Gvk>, dir: &Path) -> Result<(), String> {
    let defs = openapi["definitions"]
        .as_object()
        .ok_or("the OpenAPI document has no definitions")?;
    let by_gvk = definitions_by_gvk(openapi);
    let missing: Vec<_> = wanted.iter().filter(|g| !by_gvk.contains_key(g)).collect();
    if !missing.is_empty() {
        return Err(format!("no OpenAPI definition for {missing:?}"));
    }
    for gvk in wanted {
        let root = &by_gvk[gvk];
        let mut reached = BTreeSet::new();
        collect_refs(defs, &defs[root], &mut reached);
        let mut schema = translate(&defs[root]);
        let definitions: Map<String, Value> = reached
            .iter()
            .map(|name| (name.clone(), translate_definition(name, &defs[name])))
            .collect();
        let object = schema
            .as_object_mut()
            .ok_or("a definition is not an object")?;
        object.insert(
            "$schema".into(),
            json!("http://json-schema.org/draft-04/schema#"),
        );
        object.insert("definitions".into(), Value::Object(definitions));
        let path = dir.join(gvk.file_name());
        std::fs::create_dir_all(path.parent().unwrap_or(dir)).map_err(|e| e.to_string())?;
        std::fs::write(
            &path,
            serde_json::to_vec(&schema).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Adds every definition `schema` reaches through `$ref`, transitively.
fn collect_refs(defs: &Map<String, Value>, schema: &Value, reached: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/definitions/"))
            {
                if reached.insert(name.to_string()) {
                    if let Some(def) = defs.get(name) {
                        collect_refs(defs, def, reached);
                    }
                }
            }
            for v in map.values() {
                collect_refs(defs, v, reached);
            }
        }
        Value::Array(items) => {
            for v in items {
                collect_refs(defs, v, reached);
            }
        }
        _ => {}
    }
}

fn translate_definition(name: &str, def: &Value) -> Value {
    if name == QUANTITY {
        return json!({"oneOf": [{"type": "string"}, {"type": "number"}]});
    }
    translate(def)
}

/// The JSON-schema reading of one OpenAPI v2 schema node (see the module doc).
fn translate(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let int_or_string = map.get("format").and_then(Value::as_str) == Some("int-or-string")
                || map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
            if int_or_string {
                return json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
            }
            let mut out: Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    // Property names are data, not schema keywords: translate their values only.
                    if k == "properties" || k == "definitions" || k == "patternProperties" {
                        let props: Map<String, Value> = v
                            .as_object()
                            .map(|p| {
                                p.iter()
                                    .map(|(pk, pv)| (pk.clone(), translate(pv)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (k.clone(), Value::Object(props))
                    } else {
                        (k.clone(), translate(v))
                    }
                })
                .collect();
            let keeps_unknown =
                map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            let combines = ["allOf", "anyOf", "oneOf"]
                .iter()
                .any(|k| map.contains_key(*k));
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !keeps_unknown
                && !combines
            {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(translate).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({"definitions": {
            "io.k8s.api.core.v1.ConfigMap": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "metadata": {"$ref": "#/definitions/meta"},
                    "data": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "ConfigMap"}],
            },
            "meta": {"type": "object", "properties": {
                "name": {"type": "string"},
                "port": {"type": "string", "format": "int-or-string"},
                "owner": {"$ref": "#/definitions/meta"},
            }},
            "unused": {"type": "object"},
        }})
    }

    #[test]
    fn a_kind_gets_its_definition_and_what_it_references_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let gvk = Gvk::of("v1", "ConfigMap");
        write_schemas(&document(), &BTreeSet::from([gvk.clone()]), dir.path()).unwrap();
        let path = dir.path().join("v1/configmap-v1.json");
        assert_eq!(gvk.file_name(), "v1/configmap-v1.json");
        let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        let defs = schema["definitions"].as_object().unwrap();
        assert_eq!(
            defs.keys().collect::<Vec<_>>(),
            ["meta"],
            "only what is reached"
        );
        assert_eq!(
            defs["meta"]["properties"]["port"],
            json!({"oneOf": [{"type": "string"}, {"type": "integer"}]})
        );
        assert_eq!(
            schema["properties"]["data"]["additionalProperties"],
            json!({"type": "string"})
        );
    }

    #[test]
    fn a_kind_the_server_does_not_serve_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_schemas(
            &document(),
            &BTreeSet::from([Gvk::of("monitoring.coreos.com/v1", "PodMonitor")]),
            dir.path(),
        )
        .unwrap_err();
        assert!(err.contains("PodMonitor"), "{err}");
    }
}
