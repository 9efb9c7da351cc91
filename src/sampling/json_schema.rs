//! JSON schema → GBNF, for structured output (`response_format`). The grammar produces JSON the
//! way llama.cpp's converter does: compact values with optional whitespace (`space`) after each
//! token, object properties in schema order (required ones first), no additional properties
//! unless the schema allows them on a property-less object.
//!
//! Supported: `type` (one or a list), `properties` + `required`, `additionalProperties`
//! (false, or true / a schema on objects without `properties`), `enum`, `const`, `items`,
//! `prefixItems`, `minItems`, `maxItems`, `minLength`, `maxLength`, `format` (`date`, `time`,
//! `date-time`, `uuid`), `minimum` / `maximum` / `exclusiveMinimum` / `exclusiveMaximum` on
//! integers and on numbers, `anyOf`, `oneOf`, `allOf` (of object schemas), local `$ref`
//! (`#/$defs/..`, `#/definitions/..`, `#`), and annotations (`title`, `description`, ...), which
//! are ignored. Anything else is an error naming the keyword and where it is.
//!
//! ```
//! use bitnet::sampling::json_schema::to_gbnf;
//! use bitnet::sampling::grammar::Grammar;
//! let gbnf = to_gbnf(r#"{"type":"object","properties":{"n":{"type":"integer","minimum":1,"maximum":12}},"required":["n"]}"#).unwrap();
//! let g = Grammar::parse(&gbnf, "root").unwrap();
//! assert!(g.accepts(r#"{"n": 12}"#));
//! assert!(!g.accepts(r#"{"n": 13}"#));
//! ```

use std::collections::BTreeMap;

use super::json::Json;
use crate::{Error, Result};

/// Converts a JSON schema (text) to a GBNF grammar whose root rule is `root`.
pub fn to_gbnf(schema: &str) -> Result<String> {
    let doc = Json::parse(schema).map_err(|e| e.context("JSON schema"))?;
    schema_to_gbnf(&doc)
}

/// As [`to_gbnf`], from a parsed schema.
pub(crate) fn schema_to_gbnf(schema: &Json) -> Result<String> {
    let mut c = Converter {
        root: schema,
        rules: BTreeMap::new(),
        refs: BTreeMap::new(),
    };
    let body = c.visit(schema, "root", "#")?;
    if body != "root" {
        c.set_rule("root", &body);
    }
    let mut out = String::new();
    for (name, body) in &c.rules {
        out.push_str(name);
        out.push_str(" ::= ");
        out.push_str(body);
        out.push('\n');
    }
    Ok(out)
}

const SPACE: &str = "| \" \" | \"\\n\" [ \\t]{0,20}";
const CHAR: &str = "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})";

/// Building blocks and the rules they need.
fn primitive(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name {
        "space" => (SPACE, &[]),
        "boolean" => ("(\"true\" | \"false\") space", &["space"]),
        "null" => ("\"null\" space", &["space"]),
        "decimal-part" => ("[0-9]{1,16}", &[]),
        "integral-part" => ("[0] | [1-9] [0-9]{0,15}", &[]),
        "number" => (
            "(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)? space",
            &["integral-part", "decimal-part", "space"],
        ),
        "integer" => ("(\"-\"? integral-part) space", &["integral-part", "space"]),
        "char" => (CHAR, &[]),
        "string" => ("\"\\\"\" char* \"\\\"\" space", &["char", "space"]),
        "value" => (
            "object | array | string | number | boolean | null",
            &["object", "array", "string", "number", "boolean", "null"],
        ),
        "object" => (
            "\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? \"}\" space",
            &["string", "value", "space"],
        ),
        "array" => (
            "\"[\" space ( value (\",\" space value)* )? \"]\" space",
            &["value", "space"],
        ),
        "uuid" => (
            "\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12} \"\\\"\" space",
            &["space"],
        ),
        "date" => (
            "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )",
            &[],
        ),
        "time" => (
            "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? ( \"Z\" | ( \"+\" | \"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )",
            &[],
        ),
        "date-time" => ("date \"T\" time", &["date", "time"]),
        "date-string" => ("\"\\\"\" date \"\\\"\" space", &["date", "space"]),
        "time-string" => ("\"\\\"\" time \"\\\"\" space", &["time", "space"]),
        "date-time-string" => ("\"\\\"\" date-time \"\\\"\" space", &["date-time", "space"]),
        _ => return None,
    })
}

/// Keywords that only describe and never constrain.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "$defs",
    "definitions",
    "strict",
];

struct Converter<'a> {
    root: &'a Json,
    rules: BTreeMap<String, String>,
    /// `$ref` target → rule name (set before visiting, so recursion terminates).
    refs: BTreeMap<String, String>,
}

fn unsupported(path: &str, what: impl std::fmt::Display) -> Error {
    Error::unsupported(format!("JSON schema at {path}: {what}"))
}

fn sanitize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    if out.is_empty() {
        out.push('x');
    }
    out
}

/// A GBNF string literal for `s`.
fn gbnf_literal(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl<'a> Converter<'a> {
    fn set_rule(&mut self, name: &str, body: &str) -> String {
        self.rules.insert(name.to_string(), body.to_string());
        name.to_string()
    }

    /// Adds a rule with a fresh name based on `base` (reusing one with the same body).
    fn add_rule(&mut self, base: &str, body: &str) -> String {
        let base = sanitize(base);
        let mut name = base.clone();
        let mut i = 0;
        while let Some(existing) = self.rules.get(&name) {
            if existing == body {
                return name;
            }
            i += 1;
            name = format!("{base}{i}");
        }
        self.set_rule(&name, body)
    }

    fn prim(&mut self, name: &str) -> String {
        if !self.rules.contains_key(name) {
            if let Some((body, deps)) = primitive(name) {
                self.rules.insert(name.to_string(), body.to_string());
                for d in deps {
                    self.prim(d);
                }
            }
        }
        name.to_string()
    }

    fn resolve_ref(&mut self, r: &str, path: &str) -> Result<String> {
        if let Some(name) = self.refs.get(r) {
            return Ok(name.clone());
        }
        let Some(ptr) = r.strip_prefix('#') else {
            return Err(unsupported(path, format!("remote $ref '{r}'")));
        };
        let mut target = self.root;
        for part in ptr.split('/').filter(|p| !p.is_empty()) {
            let part = part.replace("~1", "/").replace("~0", "~");
            target = match target {
                Json::Object(_) => target.get(&part),
                Json::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            }
            .ok_or_else(|| unsupported(path, format!("$ref '{r}' points nowhere")))?;
        }
        let base = if ptr.is_empty() {
            "root-ref".to_string()
        } else {
            ptr.rsplit('/').next().unwrap_or("ref").to_string()
        };
        let mut name = sanitize(&base);
        let mut i = 0;
        while self.rules.contains_key(&name) || self.refs.values().any(|v| *v == name) {
            i += 1;
            name = format!("{}{i}", sanitize(&base));
        }
        self.refs.insert(r.to_string(), name.clone());
        self.rules.insert(name.clone(), String::new());
        let body = self.visit(target, &name, r)?;
        self.rules.insert(name.clone(), body);
        Ok(name)
    }

    /// The GBNF expression for `schema` (rules it needs are added); `name` is a base for the
    /// names of new rules, `path` a JSON pointer for messages.
    fn visit(&mut self, schema: &Json, name: &str, path: &str) -> Result<String> {
        let obj = match schema {
            Json::Bool(true) => return Ok(self.prim("value")),
            Json::Bool(false) => {
                return Err(unsupported(path, "the schema `false` matches nothing"))
            }
            Json::Object(m) => m,
            other => {
                return Err(unsupported(
                    path,
                    format!(
                        "a schema must be an object or a boolean, not {}",
                        other.type_name()
                    ),
                ))
            }
        };
        if let Some(r) = schema.get("$ref") {
            let r = r
                .as_str()
                .ok_or_else(|| unsupported(path, "$ref must be a string"))?;
            return self.resolve_ref(r, path);
        }
        for (k, _) in obj {
            let known = ANNOTATIONS.contains(&k.as_str())
                || matches!(
                    k.as_str(),
                    "type"
                        | "properties"
                        | "required"
                        | "additionalProperties"
                        | "enum"
                        | "const"
                        | "items"
                        | "prefixItems"
                        | "minItems"
                        | "maxItems"
                        | "minLength"
                        | "maxLength"
                        | "format"
                        | "minimum"
                        | "maximum"
                        | "exclusiveMinimum"
                        | "exclusiveMaximum"
                        | "anyOf"
                        | "oneOf"
                        | "allOf"
                );
            if !known {
                return Err(unsupported(path, format!("keyword '{k}' is not supported")));
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alts) = schema.get(key) {
                if schema.get("properties").is_some() {
                    return Err(unsupported(
                        path,
                        format!("'{key}' mixed with 'properties' is not supported"),
                    ));
                }
                let alts = alts.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                    unsupported(path, format!("'{key}' must be a non-empty array"))
                })?;
                let mut parts = Vec::new();
                for (i, a) in alts.iter().enumerate() {
                    let sub =
                        self.visit(a, &format!("{name}-{i}"), &format!("{path}/{key}/{i}"))?;
                    parts.push(sub);
                }
                return Ok(self.wrap(name, &parts.join(" | ")));
            }
        }
        if let Some(all) = schema.get("allOf") {
            return self.all_of(schema, all, name, path);
        }
        if let Some(c) = schema.get("const") {
            return Ok(self.literal_value(c));
        }
        if let Some(e) = schema.get("enum") {
            let vals = e
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| unsupported(path, "'enum' must be a non-empty array"))?;
            let parts: Vec<String> = vals.iter().map(|v| self.literal_value(v)).collect();
            return Ok(self.wrap(name, &parts.join(" | ")));
        }
        let types: Vec<&str> = match schema.get("type") {
            None => {
                if schema.get("properties").is_some()
                    || schema.get("additionalProperties").is_some()
                {
                    vec!["object"]
                } else if schema.get("items").is_some() || schema.get("prefixItems").is_some() {
                    vec!["array"]
                } else {
                    return Ok(self.prim("value"));
                }
            }
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(ts)) => ts
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or_else(|| unsupported(path, "'type' list entries must be strings"))
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(unsupported(path, "'type' must be a string or a list")),
        };
        if types.is_empty() {
            return Err(unsupported(path, "'type' is an empty list"));
        }
        let mut parts = Vec::new();
        for t in &types {
            let sub_name = if types.len() > 1 {
                format!("{name}-{t}")
            } else {
                name.to_string()
            };
            parts.push(self.typed(schema, t, &sub_name, path)?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            self.wrap(name, &parts.join(" | "))
        })
    }

    /// Puts an alternation in parentheses (for use inside a sequence).
    fn wrap(&mut self, _name: &str, alts: &str) -> String {
        format!("({alts})")
    }

    fn literal_value(&mut self, v: &Json) -> String {
        self.prim("space");
        format!("{} space", gbnf_literal(&v.to_compact()))
    }

    fn typed(&mut self, schema: &Json, t: &str, name: &str, path: &str) -> Result<String> {
        match t {
            "null" => Ok(self.prim("null")),
            "boolean" => Ok(self.prim("boolean")),
            "integer" | "number" => self.numeric(schema, t == "integer", name, path),
            "string" => self.string(schema, name, path),
            "array" => self.array(schema, name, path),
            "object" => self.object(schema, name, path),
            other => Err(unsupported(path, format!("unknown type '{other}'"))),
        }
    }

    fn usize_kw(schema: &Json, key: &str, path: &str) -> Result<Option<usize>> {
        match schema.get(key) {
            None => Ok(None),
            Some(Json::Number(_, v)) if *v >= 0.0 && v.fract() == 0.0 && *v <= 1e9 => {
                Ok(Some(*v as usize))
            }
            Some(_) => Err(unsupported(
                path,
                format!("'{key}' must be a non-negative integer"),
            )),
        }
    }

    fn string(&mut self, schema: &Json, name: &str, path: &str) -> Result<String> {
        if let Some(f) = schema.get("format") {
            let f = f
                .as_str()
                .ok_or_else(|| unsupported(path, "'format' must be a string"))?;
            let rule = match f {
                "date" => "date-string",
                "time" => "time-string",
                "date-time" => "date-time-string",
                "uuid" => "uuid",
                other => {
                    return Err(unsupported(
                        path,
                        format!("string format '{other}' (supported: date, time, date-time, uuid)"),
                    ))
                }
            };
            return Ok(self.prim(rule));
        }
        let min = Self::usize_kw(schema, "minLength", path)?.unwrap_or(0);
        let max = Self::usize_kw(schema, "maxLength", path)?;
        if max.is_some_and(|m| m < min) {
            return Err(unsupported(path, "maxLength is below minLength"));
        }
        if min == 0 && max.is_none() {
            return Ok(self.prim("string"));
        }
        self.prim("char");
        self.prim("space");
        let rep = repetition("char", min, max);
        let body = format!("\"\\\"\" {rep} \"\\\"\" space");
        Ok(self.add_rule(name, &body))
    }

    fn array(&mut self, schema: &Json, name: &str, path: &str) -> Result<String> {
        self.prim("space");
        if let Some(prefix) = schema.get("prefixItems") {
            let items = prefix
                .as_array()
                .ok_or_else(|| unsupported(path, "'prefixItems' must be an array"))?;
            if matches!(schema.get("items"), Some(i) if *i != Json::Bool(false)) {
                return Err(unsupported(
                    path,
                    "'prefixItems' with more 'items' is not supported",
                ));
            }
            let mut parts = Vec::new();
            for (i, it) in items.iter().enumerate() {
                parts.push(self.visit(
                    it,
                    &format!("{name}-tuple-{i}"),
                    &format!("{path}/prefixItems/{i}"),
                )?);
            }
            let body = format!("\"[\" space {} \"]\" space", parts.join(" \",\" space "));
            return Ok(self.add_rule(name, &body));
        }
        let item = match schema.get("items") {
            None | Some(Json::Bool(true)) => self.prim("value"),
            Some(it) => self.visit(it, &format!("{name}-item"), &format!("{path}/items"))?,
        };
        let min = Self::usize_kw(schema, "minItems", path)?.unwrap_or(0);
        let max = Self::usize_kw(schema, "maxItems", path)?;
        if max.is_some_and(|m| m < min) {
            return Err(unsupported(path, "maxItems is below minItems"));
        }
        if max.is_some_and(|m| m > 1000) || min > 1000 {
            return Err(unsupported(path, "minItems / maxItems above 1000"));
        }
        let inner = match max {
            Some(0) => String::new(),
            _ => {
                let rest = repetition(
                    &format!("(\",\" space {item})"),
                    min.saturating_sub(1),
                    max.map(|m| m - 1),
                );
                let seq = format!("{item} {rest}");
                if min == 0 {
                    format!("( {seq} )?")
                } else {
                    seq
                }
            }
        };
        let body = format!("\"[\" space {inner} \"]\" space");
        Ok(self.add_rule(name, &body))
    }

    fn all_of(&mut self, schema: &Json, all: &Json, name: &str, path: &str) -> Result<String> {
        let parts = all
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| unsupported(path, "'allOf' must be a non-empty array"))?;
        // Merge object schemas: properties and required lists (resolving local $refs).
        let mut props: Vec<(String, Json)> = Vec::new();
        let mut required: Vec<Json> = Vec::new();
        let add = |s: &Json,
                   p: &str,
                   props: &mut Vec<(String, Json)>,
                   required: &mut Vec<Json>|
         -> Result<()> {
            if let Some(ps) = s.get("properties").and_then(|p| p.as_object()) {
                for (k, v) in ps {
                    props.retain(|(pk, _)| pk != k);
                    props.push((k.clone(), v.clone()));
                }
            }
            if let Some(r) = s.get("required").and_then(|r| r.as_array()) {
                required.extend(r.iter().cloned());
            }
            for (k, _) in s.as_object().unwrap_or(&[]) {
                if !matches!(
                    k.as_str(),
                    "properties" | "required" | "type" | "additionalProperties" | "allOf"
                ) && !ANNOTATIONS.contains(&k.as_str())
                {
                    return Err(unsupported(p, format!("'allOf' member with keyword '{k}'")));
                }
            }
            Ok(())
        };
        add(schema, path, &mut props, &mut required)?;
        for (i, p) in parts.iter().enumerate() {
            let p_path = format!("{path}/allOf/{i}");
            let mut target = p;
            if let Some(r) = p.get("$ref").and_then(|r| r.as_str()) {
                let ptr = r
                    .strip_prefix('#')
                    .ok_or_else(|| unsupported(&p_path, format!("remote $ref '{r}'")))?;
                let mut t = self.root;
                for part in ptr.split('/').filter(|x| !x.is_empty()) {
                    t = t.get(part).ok_or_else(|| {
                        unsupported(&p_path, format!("$ref '{r}' points nowhere"))
                    })?;
                }
                target = t;
            }
            add(target, &p_path, &mut props, &mut required)?;
        }
        let merged = Json::Object(vec![
            ("type".into(), Json::String("object".into())),
            ("properties".into(), Json::Object(props)),
            ("required".into(), Json::Array(required)),
        ]);
        self.object(&merged, name, path)
    }

    fn object(&mut self, schema: &Json, name: &str, path: &str) -> Result<String> {
        self.prim("space");
        let props: Vec<(String, Json)> = match schema.get("properties") {
            None => Vec::new(),
            Some(Json::Object(m)) => m.clone(),
            Some(_) => return Err(unsupported(path, "'properties' must be an object")),
        };
        let required: Vec<String> = match schema.get("required") {
            None => Vec::new(),
            Some(Json::Array(a)) => a
                .iter()
                .map(|r| {
                    r.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| unsupported(path, "'required' entries must be strings"))
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(unsupported(path, "'required' must be an array")),
        };
        for r in &required {
            if !props.iter().any(|(k, _)| k == r) {
                return Err(unsupported(
                    path,
                    format!("required property '{r}' is not in 'properties'"),
                ));
            }
        }
        let additional = schema.get("additionalProperties");
        if props.is_empty() {
            let value = match additional {
                Some(Json::Bool(false)) => {
                    return Ok(self.add_rule(name, "\"{\" space \"}\" space"))
                }
                None | Some(Json::Bool(true)) => return Ok(self.prim("object")),
                Some(s) => self.visit(
                    s,
                    &format!("{name}-additional-value"),
                    &format!("{path}/additionalProperties"),
                )?,
            };
            let key = self.prim("string");
            let kv = format!("{key} \":\" space {value}");
            let body = format!("\"{{\" space ( {kv} ( \",\" space {kv} )* )? \"}}\" space");
            return Ok(self.add_rule(name, &body));
        }
        if !matches!(additional, None | Some(Json::Bool(false))) {
            return Err(unsupported(
                path,
                "'additionalProperties' other than false together with 'properties'",
            ));
        }
        let mut req_kvs = Vec::new();
        let mut opt_kvs = Vec::new();
        for (k, v) in &props {
            let pname = format!("{name}-{}", sanitize(k));
            let value = self.visit(v, &pname, &format!("{path}/properties/{k}"))?;
            let mut key = String::new();
            super::json::write_string(k, &mut key);
            let kv_body = format!("{} space \":\" space {value}", gbnf_literal(&key));
            let kv = self.add_rule(&format!("{pname}-kv"), &kv_body);
            if required.contains(k) {
                req_kvs.push(kv);
            } else {
                opt_kvs.push(kv);
            }
        }
        // Optional properties in order, any subset: rest(i) = kv_j ("," rest(j+1))? for j >= i.
        let mut rest_rules: Vec<String> = vec![String::new(); opt_kvs.len()];
        for i in (0..opt_kvs.len()).rev() {
            let mut alts = Vec::new();
            for j in i..opt_kvs.len() {
                if j + 1 < opt_kvs.len() {
                    alts.push(format!(
                        "{} ( \",\" space {} )?",
                        opt_kvs[j],
                        rest_rules[j + 1]
                    ));
                } else {
                    alts.push(opt_kvs[j].clone());
                }
            }
            rest_rules[i] = self.add_rule(&format!("{name}-rest-{i}"), &alts.join(" | "));
        }
        let mut body = String::from("\"{\" space ");
        body.push_str(&req_kvs.join(" \",\" space "));
        if let Some(first) = rest_rules.first() {
            if req_kvs.is_empty() {
                body.push_str(&format!("( {first} )?"));
            } else {
                body.push_str(&format!(" ( \",\" space {first} )?"));
            }
        }
        body.push_str(" \"}\" space");
        Ok(self.add_rule(name, &body))
    }

    fn numeric(&mut self, schema: &Json, integer: bool, name: &str, path: &str) -> Result<String> {
        let num = |k: &str| -> Result<Option<f64>> {
            match schema.get(k) {
                None => Ok(None),
                Some(Json::Number(_, v)) if v.is_finite() => Ok(Some(*v)),
                Some(Json::Bool(_)) if k.starts_with("exclusive") => Err(unsupported(
                    path,
                    format!("boolean '{k}' (draft 4) is not supported; use a number"),
                )),
                Some(_) => Err(unsupported(path, format!("'{k}' must be a number"))),
            }
        };
        let (min, max) = (num("minimum")?, num("maximum")?);
        let (xmin, xmax) = (num("exclusiveMinimum")?, num("exclusiveMaximum")?);
        if min.is_none() && max.is_none() && xmin.is_none() && xmax.is_none() {
            return Ok(self.prim(if integer { "integer" } else { "number" }));
        }
        self.prim("space");
        if integer {
            // Integer bounds: ceil / floor, exclusive ones moved by one.
            let lo = [min.map(|v| v.ceil()), xmin.map(|v| v.floor() + 1.0)]
                .into_iter()
                .flatten()
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
            let hi = [max.map(|v| v.floor()), xmax.map(|v| v.ceil() - 1.0)]
                .into_iter()
                .flatten()
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b))));
            let lim = 9.0e15;
            if lo.is_some_and(|v| v.abs() > lim) || hi.is_some_and(|v| v.abs() > lim) {
                return Err(unsupported(path, "integer bounds beyond ±9e15"));
            }
            let (lo, hi) = (lo.map(|v| v as i64), hi.map(|v| v as i64));
            if let (Some(a), Some(b)) = (lo, hi) {
                if a > b {
                    return Err(unsupported(path, "the integer bounds leave no value"));
                }
            }
            let body = format!("{} space", int_range(lo, hi));
            return Ok(self.add_rule(name, &body));
        }
        let body = format!("{} space", number_range(min, max, xmin, xmax, path)?);
        Ok(self.add_rule(name, &body))
    }
}

/// `item` repeated min..=max times (max None: unbounded), as GBNF.
fn repetition(item: &str, min: usize, max: Option<usize>) -> String {
    match (min, max) {
        (_, Some(0)) => String::new(),
        (0, Some(1)) => format!("{item}?"),
        (0, None) => format!("{item}*"),
        (1, None) => format!("{item}+"),
        (m, None) => format!("{item}{{{m},}}"),
        (m, Some(n)) if m == n => format!("{item}{{{m}}}"),
        (m, Some(n)) => format!("{item}{{{m},{n}}}"),
    }
}

fn digit_class(lo: u8, hi: u8) -> String {
    if lo == hi {
        format!("[{}]", lo as char)
    } else {
        format!("[{}-{}]", lo as char, hi as char)
    }
}

fn any_digits(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "[0-9]".into(),
        n => format!("[0-9]{{{n}}}"),
    }
}

/// Decimal strings of equal length from `a` to `b` (inclusive, `a <= b`).
fn same_len_range(a: &[u8], b: &[u8]) -> String {
    let n = a.len();
    if n == 0 {
        return String::new();
    }
    if a == b {
        return format!("\"{}\"", std::str::from_utf8(a).unwrap_or(""));
    }
    if n == 1 {
        return digit_class(a[0], b[0]);
    }
    if a[0] == b[0] {
        return format!("[{}] {}", a[0] as char, same_len_range(&a[1..], &b[1..]));
    }
    let tail_a_zero = a[1..].iter().all(|&c| c == b'0');
    let tail_b_nine = b[1..].iter().all(|&c| c == b'9');
    let mid_lo = if tail_a_zero { a[0] } else { a[0] + 1 };
    let mid_hi = if tail_b_nine { b[0] } else { b[0] - 1 };
    let mut alts = Vec::new();
    if !tail_a_zero {
        let nines = vec![b'9'; n - 1];
        alts.push(format!(
            "[{}] {}",
            a[0] as char,
            same_len_range(&a[1..], &nines)
        ));
    }
    if mid_lo <= mid_hi {
        alts.push(format!(
            "{} {}",
            digit_class(mid_lo, mid_hi),
            any_digits(n - 1)
        ));
    }
    if !tail_b_nine {
        let zeros = vec![b'0'; n - 1];
        alts.push(format!(
            "[{}] {}",
            b[0] as char,
            same_len_range(&zeros, &b[1..])
        ));
    }
    format!("({})", alts.join(" | "))
}

/// Most digits an unbounded integer may have (llama.cpp's `integral-part`).
const MAX_DIGITS: usize = 16;

/// Canonical decimals (no leading zeros) of n in [lo, hi]; hi None: up to 16 digits.
fn nonneg_range(lo: u64, hi: Option<u64>) -> String {
    let ls = lo.to_string();
    let mut alts = Vec::new();
    match hi {
        Some(h) => {
            let hs = h.to_string();
            for len in ls.len()..=hs.len() {
                let from = if len == ls.len() {
                    ls.clone()
                } else {
                    format!("1{}", "0".repeat(len - 1))
                };
                let to = if len == hs.len() {
                    hs.clone()
                } else {
                    "9".repeat(len)
                };
                alts.push(same_len_range(from.as_bytes(), to.as_bytes()));
            }
        }
        None => {
            let len = ls.len();
            alts.push(same_len_range(ls.as_bytes(), "9".repeat(len).as_bytes()));
            if len < MAX_DIGITS {
                alts.push(format!("[1-9] [0-9]{{{},{}}}", len, MAX_DIGITS - 1));
            }
        }
    }
    if alts.len() == 1 {
        alts.pop().unwrap_or_default()
    } else {
        format!("({})", alts.join(" | "))
    }
}

/// Integers in [lo, hi] (None: unbounded on that side, up to 16 digits).
fn int_range(lo: Option<i64>, hi: Option<i64>) -> String {
    let mut alts = Vec::new();
    // Negative part: -v for v in [max(1, -hi), -lo].
    if lo.is_none_or(|l| l < 0) {
        let neg_hi = lo.map(|l| l.unsigned_abs());
        let neg_lo = hi.map_or(1, |h| if h < 0 { h.unsigned_abs() } else { 1 });
        alts.push(format!("\"-\" {}", nonneg_range(neg_lo, neg_hi)));
    }
    if hi.is_none_or(|h| h >= 0) {
        let l = lo.map_or(0, |l| l.max(0) as u64);
        alts.push(nonneg_range(l, hi.map(|h| h as u64)));
    }
    format!("({})", alts.join(" | "))
}

/// Non-empty fraction digit strings d (at most 16 digits) with 0.d >= 0.m (> when strict).
fn ge_nonempty(m: &[u8], strict: bool) -> Option<String> {
    if m.iter().all(|&c| c == b'0') {
        return Some(if strict {
            "[0]{0,15} [1-9] [0-9]{0,15}".to_string()
        } else {
            "[0-9]{1,16}".to_string()
        });
    }
    let mut alts = Vec::new();
    if m[0] < b'9' {
        alts.push(format!("{} [0-9]{{0,15}}", digit_class(m[0] + 1, b'9')));
    }
    let tail = &m[1..];
    let rest = if tail.iter().all(|&c| c == b'0') && !strict {
        Some("[0-9]{0,15}".to_string())
    } else {
        ge_nonempty(tail, strict)
    };
    if let Some(r) = rest {
        alts.push(format!("[{}] {r}", m[0] as char));
    }
    (!alts.is_empty()).then(|| format!("({})", alts.join(" | ")))
}

/// Non-empty fraction digit strings d with 0.d <= 0.m (< when strict).
fn le_nonempty(m: &[u8], strict: bool) -> Option<String> {
    if m.iter().all(|&c| c == b'0') {
        return (!strict).then(|| "[0]{1,16}".to_string());
    }
    let mut alts = Vec::new();
    if m[0] > b'0' {
        alts.push(format!("{} [0-9]{{0,15}}", digit_class(b'0', m[0] - 1)));
    }
    let tail = &m[1..];
    // After m[0]: the empty rest (value 0.m0 <= 0.m; strictly below iff the tail is non-zero)
    // or a non-empty rest within the tail's bound.
    let empty_ok = !strict || tail.iter().any(|&c| c != b'0');
    let rest = le_nonempty(tail, strict);
    match (empty_ok, rest) {
        (true, Some(r)) => alts.push(format!("[{}] ({r})?", m[0] as char)),
        (true, None) => alts.push(format!("[{}]", m[0] as char)),
        (false, Some(r)) => alts.push(format!("[{}] {r}", m[0] as char)),
        (false, None) => {}
    }
    (!alts.is_empty()).then(|| format!("({})", alts.join(" | ")))
}

/// `|v|` as integer part and fraction digits (trailing zeros dropped).
fn split_decimal(v: f64) -> (u64, Vec<u8>) {
    let s = format!("{:.15}", v.abs());
    let (i, f) = s.split_once('.').unwrap_or((&s, ""));
    let f = f.trim_end_matches('0');
    (i.parse().unwrap_or(0), f.as_bytes().to_vec())
}

/// The text after an integer part: optional `"." digits` where the digits satisfy `frac`
/// (None: no fraction possible) and `bare_ok` says whether no fraction at all is allowed.
fn tail(bare_ok: bool, frac: Option<String>) -> Option<String> {
    match (bare_ok, frac) {
        (true, Some(f)) => Some(format!("(\".\" {f})?")),
        (true, None) => Some(String::new()),
        (false, Some(f)) => Some(format!("\".\" {f}")),
        (false, None) => None,
    }
}

/// Non-negative decimals `int ("." frac)?` in the range (bounds: value, strict); None if empty.
fn pos_range(lo: (f64, bool), hi: Option<(f64, bool)>, path: &str) -> Result<Option<String>> {
    let (li, lf) = split_decimal(lo.0);
    let any_frac = "(\".\" [0-9]{1,16})?";
    let lo_bare = lf.is_empty() && !lo.1;
    let lo_tail = tail(lo_bare, ge_nonempty(&lf, lo.1));
    let mut alts = Vec::new();
    match hi {
        None => {
            if let Some(t) = lo_tail {
                alts.push(format!("\"{li}\" {t}"));
            }
            alts.push(format!("{} {any_frac}", nonneg_range(li + 1, None)));
        }
        Some((hv, hs)) => {
            let (hi_i, hf) = split_decimal(hv);
            let hi_bare = !(hs && hf.is_empty());
            let hi_tail = tail(hi_bare, le_nonempty(&hf, hs));
            if li == hi_i {
                if lf.is_empty() && !lo.1 {
                    if let Some(t) = hi_tail {
                        alts.push(format!("\"{li}\" {t}"));
                    }
                } else {
                    return Err(unsupported(
                        path,
                        "number bounds with a fractional minimum inside the maximum's integer unit",
                    ));
                }
            } else {
                if let Some(t) = lo_tail {
                    alts.push(format!("\"{li}\" {t}"));
                }
                if li + 1 < hi_i {
                    alts.push(format!(
                        "{} {any_frac}",
                        nonneg_range(li + 1, Some(hi_i - 1))
                    ));
                }
                if let Some(t) = hi_tail {
                    alts.push(format!("\"{hi_i}\" {t}"));
                }
            }
        }
    }
    Ok((!alts.is_empty()).then(|| format!("({})", alts.join(" | "))))
}

/// Numbers (no exponent, at most 16 fraction digits) within optional inclusive / exclusive
/// bounds.
fn number_range(
    min: Option<f64>,
    max: Option<f64>,
    xmin: Option<f64>,
    xmax: Option<f64>,
    path: &str,
) -> Result<String> {
    let lo = match (min, xmin) {
        (Some(a), Some(b)) => Some(if b >= a { (b, true) } else { (a, false) }),
        (Some(a), None) => Some((a, false)),
        (None, Some(b)) => Some((b, true)),
        (None, None) => None,
    };
    let hi = match (max, xmax) {
        (Some(a), Some(b)) => Some(if b <= a { (b, true) } else { (a, false) }),
        (Some(a), None) => Some((a, false)),
        (None, Some(b)) => Some((b, true)),
        (None, None) => None,
    };
    if lo.is_some_and(|(v, _)| v.abs() > 9.0e15) || hi.is_some_and(|(v, _)| v.abs() > 9.0e15) {
        return Err(unsupported(path, "number bounds beyond ±9e15"));
    }
    let mut alts = Vec::new();
    // Negative values -y: y in (max(0, -hi), -lo] (y = 0 is written without a sign).
    if lo.is_none_or(|(v, _)| v < 0.0) {
        let y_lo = match hi {
            Some((v, s)) if v < 0.0 => (-v, s),
            _ => (0.0, true),
        };
        let y_hi = lo.map(|(v, s)| (-v, s));
        if let Some(e) = pos_range(y_lo, y_hi, path)? {
            alts.push(format!("\"-\" {e}"));
        }
    }
    if hi.is_none_or(|(v, _)| v >= 0.0) {
        let p_lo = match lo {
            Some((v, s)) if v >= 0.0 => (v, s),
            _ => (0.0, false),
        };
        if let Some(e) = pos_range(p_lo, hi, path)? {
            alts.push(e);
        }
    }
    if alts.is_empty() {
        return Err(unsupported(path, "the number bounds leave no value"));
    }
    Ok(format!("({})", alts.join(" | ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::grammar::Grammar;

    fn grammar(schema: &str) -> Grammar {
        let g = to_gbnf(schema).unwrap();
        Grammar::parse(&g, "root").unwrap_or_else(|e| panic!("{e}\n{g}"))
    }

    #[test]
    fn integer_ranges_match_brute_force() {
        let bounds: [(Option<i64>, Option<i64>); 12] = [
            (Some(0), None),
            (Some(2), None),
            (Some(456), None),
            (Some(-123), None),
            (None, Some(9999)),
            (None, Some(-9999)),
            (Some(-5), Some(5)),
            (Some(13), Some(870)),
            (Some(-870), Some(-13)),
            (Some(0), Some(0)),
            (Some(100), Some(1099)),
            (Some(-1), Some(1000)),
        ];
        for (lo, hi) in bounds {
            let mut schema = String::from("{\"type\":\"integer\"");
            if let Some(l) = lo {
                schema.push_str(&format!(",\"minimum\":{l}"));
            }
            if let Some(h) = hi {
                schema.push_str(&format!(",\"maximum\":{h}"));
            }
            schema.push('}');
            let g = grammar(&schema);
            for v in (-1200i64..=1200).chain([-99999, 99999, 10000, -10000, 1234567890000000]) {
                let want = lo.is_none_or(|l| v >= l) && hi.is_none_or(|h| v <= h);
                assert_eq!(g.accepts(&v.to_string()), want, "{schema}: {v}");
            }
            for bad in ["01", "-0", "00", "+1", "12345678900000000"] {
                assert!(!g.accepts(bad), "{schema}: {bad}");
            }
        }
        // Exclusive bounds.
        let g = grammar(r#"{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10}"#);
        let ok: Vec<i64> = (-20..20).filter(|v| g.accepts(&v.to_string())).collect();
        assert_eq!(ok, (1..10).collect::<Vec<_>>());
    }

    #[test]
    fn number_ranges_match_brute_force() {
        type Pred = fn(f64) -> bool;
        let cases: [(&str, Pred); 6] = [
            (r#"{"type":"number","minimum":0}"#, |v| v >= 0.0),
            (r#"{"type":"number","minimum":-2.5,"maximum":3.25}"#, |v| {
                (-2.5..=3.25).contains(&v)
            }),
            (
                r#"{"type":"number","exclusiveMinimum":1,"exclusiveMaximum":12.5}"#,
                |v| v > 1.0 && v < 12.5,
            ),
            (r#"{"type":"number","maximum":-1.5}"#, |v| v <= -1.5),
            (r#"{"type":"number","exclusiveMaximum":0}"#, |v| v < 0.0),
            (r#"{"type":"number","minimum":0.75,"maximum":20}"#, |v| {
                (0.75..=20.0).contains(&v)
            }),
        ];
        for (schema, pred) in cases {
            let g = grammar(schema);
            for i in -400i64..=400 {
                for text in [
                    format!("{}", i as f64 / 10.0),
                    format!("{:.2}", i as f64 / 16.0),
                    format!("{:.1}", i as f64 / 10.0),
                ] {
                    let v: f64 = text.parse().unwrap();
                    if text.starts_with("-0") && v == 0.0 {
                        continue;
                    }
                    assert_eq!(g.accepts(&text), pred(v), "{schema}: {text}");
                }
            }
        }
    }

    #[test]
    fn objects_arrays_enums_refs() {
        let g = grammar(
            r#"{"type":"object","properties":{"a":{"type":"string","maxLength":3},
            "b":{"enum":["x",1,null]},"c":{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2},
            "d":{"const":{"k":[1]}}},"required":["a","c"]}"#,
        );
        for ok in [
            r#"{"a":"","c":[true]}"#,
            r#"{ "a": "xyz", "c": [false, true], "b": "x", "d": {"k":[1]} }"#,
            r#"{"a":"q","c":[true],"d":{"k":[1]}}"#,
            r#"{"a":"q","c":[true],"b":null}"#,
        ] {
            assert!(g.accepts(ok), "{ok}");
        }
        for bad in [
            r#"{"c":[true],"a":""}"#,
            r#"{"a":"abcd","c":[true]}"#,
            r#"{"a":"","c":[]}"#,
            r#"{"a":"","c":[true,true,true]}"#,
            r#"{"a":"","b":"y","c":[true]}"#,
            r#"{"a":"","c":[true],"e":1}"#,
        ] {
            assert!(!g.accepts(bad), "{bad}");
        }
        let g = grammar(
            r##"{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
            "next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},"required":["v","next"]}},
            "$ref":"#/$defs/node"}"##,
        );
        assert!(g.accepts(r#"{"v":1,"next":{"v":2,"next":null}}"#));
        assert!(!g.accepts(r#"{"v":1,"next":{"v":2}}"#));
        let g = grammar(r#"{"type":"string","format":"date-time"}"#);
        assert!(g.accepts("\"2024-02-29T23:59:01.123Z\""));
        assert!(!g.accepts("\"2024-13-29T23:59:01Z\""));
        let g = grammar(r#"{"type":["integer","null"]}"#);
        assert!(g.accepts("null") && g.accepts("-7") && !g.accepts("1.5"));
    }

    #[test]
    fn unsupported_keywords_are_errors() {
        for (schema, what) in [
            (r#"{"type":"string","pattern":"^a$"}"#, "keyword 'pattern'"),
            (
                r#"{"type":"array","uniqueItems":true}"#,
                "keyword 'uniqueItems'",
            ),
            (r#"{"not":{}}"#, "keyword 'not'"),
            (r#"{"type":"string","format":"email"}"#, "format 'email'"),
            (r#"{"$ref":"http://x/y"}"#, "remote $ref"),
            (r##"{"$ref":"#/$defs/missing"}"##, "points nowhere"),
            (r#"{"type":"widget"}"#, "unknown type"),
            (
                r#"{"properties":{"a":{}},"required":["b"]}"#,
                "'b' is not in",
            ),
            (r#"{"type":"integer","minimum":5,"maximum":1}"#, "no value"),
            (
                r#"{"type":"object","properties":{"a":{"x-foo":1}}}"#,
                "/properties/a",
            ),
            ("{", "JSON"),
        ] {
            let e = to_gbnf(schema).unwrap_err();
            assert!(e.message().contains(what), "{schema}: {e}");
        }
    }
}
