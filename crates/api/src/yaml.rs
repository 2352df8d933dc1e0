//! Just enough YAML to write JSON Schema readably into the OpenAPI document:
//! block mappings and sequences, flow form for short lists of scalars, and
//! JSON quoting for any string that is not a plain word (JSON's escapes are
//! YAML's).

use serde_json::{Map, Value};

/// `map` as block-mapping lines indented by `indent` spaces.
pub fn mapping(map: &Map<String, Value>, indent: usize) -> String {
    let mut out = String::new();
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // One order whatever serde_json's features (`preserve_order` is unified
    // across the workspace): the schema's kind first, the rest alphabetical.
    entries.sort_by_key(|(key, _)| (rank(key), key.as_str()));
    for (key, value) in entries {
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar_text(key));
        out.push(':');
        match inline(value) {
            // Text of several lines as a literal block, as a person writes it.
            _ if literal_block(value) => {
                let text = value.as_str().unwrap_or_default();
                out.push_str(" |\n");
                for line in text.lines() {
                    if !line.is_empty() {
                        out.push_str(&" ".repeat(indent + 2));
                        out.push_str(line);
                    }
                    out.push('\n');
                }
            }
            Some(text) => {
                out.push(' ');
                out.push_str(&text);
                out.push('\n');
            }
            None => {
                out.push('\n');
                out.push_str(&block(value, indent + 2));
            }
        }
    }
    out
}

/// Text of several lines that a literal block keeps exactly: a final line
/// break added by the block, no trailing blanks or tabs that it would lose.
fn literal_block(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        text.contains('\n')
            && !text.ends_with('\n')
            && !text.starts_with([' ', '\n'])
            && !text.contains('\t')
            && !text.contains('\r')
            && text.lines().all(|l| !l.ends_with(' '))
    })
}

fn rank(key: &str) -> usize {
    // An operation's id and summary, a parameter's name and place, then a schema's kind.
    const FIRST: [&str; 12] = [
        "operationId",
        "summary",
        "name",
        "in",
        "$ref",
        "type",
        "format",
        "description",
        "nullable",
        "enum",
        "const",
        "required",
    ];
    FIRST.iter().position(|k| *k == key).unwrap_or(FIRST.len())
}

fn block(value: &Value, indent: usize) -> String {
    match value {
        Value::Object(map) => mapping(map, indent),
        Value::Array(items) => {
            let mut out = String::new();
            for item in items {
                let text = match inline(item) {
                    Some(text) => format!("{}{text}\n", " ".repeat(indent + 2)),
                    None => block(item, indent + 2),
                };
                // The item's first line starts two spaces further in: put the dash there.
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                out.push_str(&text[indent + 2..]);
            }
            out
        }
        scalar => format!(
            "{}{}\n",
            " ".repeat(indent),
            inline(scalar).unwrap_or_default()
        ),
    }
}

/// The one-line form of scalars, empty containers and short lists of scalars.
fn inline(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(scalar_text(s)),
        Value::Object(map) if map.is_empty() => Some("{}".into()),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let parts: Vec<String> = items.iter().filter_map(inline).collect();
            let text = format!("[{}]", parts.join(", "));
            (text.len() <= 80).then_some(text)
        }
        _ => None,
    }
}

/// Words and plain sentences stay plain; anything YAML could read another
/// way is JSON-quoted.
fn scalar_text(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '_' | '-' | '.' | '$' | '/' | ' ' | '(' | ')' | '`' | '\''
                )
        })
        && !s.ends_with(' ')
        && !s.contains("  ")
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_schemas_are_written_as_block_yaml() {
        let schema = json!({
            "Node": {
                "type": "object",
                "required": ["id", "on"],
                "properties": {
                    "id": { "type": "string", "description": "Its id: unique." },
                    "on": { "type": "boolean" },
                    "host": { "allOf": [{ "$ref": "#/components/schemas/Host" }], "nullable": true },
                    "empty": {}
                }
            }
        });
        let Value::Object(map) = schema else {
            unreachable!("a JSON object literal")
        };
        assert_eq!(
            mapping(&map, 4),
            concat!(
                "    Node:\n",
                "      type: object\n",
                "      required: [id, \"on\"]\n",
                "      properties:\n",
                "        empty: {}\n",
                "        host:\n",
                "          nullable: true\n",
                "          allOf:\n",
                "            - $ref: \"#/components/schemas/Host\"\n",
                "        id:\n",
                "          type: string\n",
                "          description: \"Its id: unique.\"\n",
                "        \"on\":\n",
                "          type: boolean\n",
            )
        );
    }
}
