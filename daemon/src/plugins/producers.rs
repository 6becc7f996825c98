//! Which language and toolchain built a plugin, read from the component's
//! `producers` custom sections (and, for componentize-py, which names no
//! language there, the runtime library its modules link), for
//! `tweetpipe plugin check`.

use wasmparser::{Dylink0Subsection, KnownCustom, Parser, Payload};

/// What a component says about how it was built.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// The language the plugin is written in, when the component says.
    pub language: Option<String>,
    /// The tool that compiled or packed that language (`componentize-py`,
    /// `ComponentizeJS 0.23.0`, `rustc 1.95.0`), when known.
    pub compiler: Option<String>,
    /// The tools the outermost component names under `processed-by`
    /// (`wit-component 0.245.1`, ...).
    pub processed_by: Vec<String>,
}

/// One `producers` entry: the field (`language`, `processed-by`, `sdk`), the
/// tool or language, its version, and how deep in the component it sits (1
/// is the outermost component).
struct Field {
    depth: usize,
    field: String,
    name: String,
    version: String,
}

/// Reads `bytes` (a component or a core module). A malformed section is
/// skipped: the loader has already validated what tweetpipe runs.
pub fn toolchain(bytes: &[u8]) -> Toolchain {
    let mut fields = Vec::new();
    let mut componentize_py = false;
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) => match section.as_known() {
                KnownCustom::Producers(reader) => {
                    for field in reader.into_iter().flatten() {
                        for value in field.values.into_iter().flatten() {
                            fields.push(Field {
                                depth,
                                field: field.name.to_owned(),
                                name: value.name.to_owned(),
                                version: value.version.to_owned(),
                            });
                        }
                    }
                }
                KnownCustom::Dylink0(reader) => {
                    for subsection in reader.into_iter().flatten() {
                        if let Dylink0Subsection::Needed(libraries) = subsection {
                            componentize_py |= libraries
                                .iter()
                                .any(|library| library.starts_with("libcomponentize_py_runtime"));
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    identify(&fields, componentize_py)
}

/// A tool's name and the first word of its version (`rustc 1.95.0`, not the
/// commit hash and date after it).
fn tool(field: &Field) -> String {
    match field.version.split_whitespace().next() {
        Some(version) => format!("{} {version}", field.name),
        None => field.name.clone(),
    }
}

fn identify(fields: &[Field], componentize_py: bool) -> Toolchain {
    let named = |field_name: &str, name: &str| {
        fields
            .iter()
            .find(|field| field.field == field_name && field.name.eq_ignore_ascii_case(name))
    };
    let mut processed_by: Vec<String> = Vec::new();
    for field in fields
        .iter()
        .filter(|f| f.depth == 1 && f.field == "processed-by")
    {
        let tool = tool(field);
        if !processed_by.contains(&tool) {
            processed_by.push(tool);
        }
    }
    // The front ends first: their runtimes embed C, C++ and Rust modules
    // that carry languages of their own.
    let (language, compiler) = if let Some(js) = named("processed-by", "ComponentizeJS") {
        (Some("JavaScript".to_owned()), Some(tool(js)))
    } else if let Some(py) = named("processed-by", "componentize-py") {
        (Some("Python".to_owned()), Some(tool(py)))
    } else if componentize_py {
        (
            Some("Python".to_owned()),
            Some("componentize-py".to_owned()),
        )
    } else if let Some(outer) = fields
        .iter()
        .find(|field| field.depth == 1 && field.field == "language")
    {
        let compiler = match outer.name.as_str() {
            "Rust" => named("processed-by", "rustc").map(tool),
            _ => None,
        };
        (Some(language_name(&outer.name)), compiler)
    } else if named("language", "Rust").is_some()
        || named("processed-by", "rustc").is_some()
        || named("processed-by", "wit-bindgen-rust").is_some()
    {
        (
            Some("Rust".to_owned()),
            named("processed-by", "rustc").map(tool),
        )
    } else if let Some(any) = fields.iter().find(|field| field.field == "language") {
        (Some(language_name(&any.name)), None)
    } else {
        (None, None)
    };
    Toolchain {
        language,
        compiler,
        processed_by,
    }
}

/// The producers section's language names (`C11`, `C_plus_plus_14`) as people say them.
fn language_name(name: &str) -> String {
    if name.starts_with("C_plus_plus") {
        "C++".to_owned()
    } else if name.len() <= 3 && name.starts_with('C') {
        "C".to_owned()
    } else {
        name.to_owned()
    }
}

impl std::fmt::Display for Toolchain {
    /// `Python (componentize-py)`, `JavaScript (ComponentizeJS 0.23.0)`, or
    /// `unknown (the component has no producers section naming it)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.language, &self.compiler) {
            (Some(language), Some(compiler)) => write!(f, "{language} ({compiler})"),
            (Some(language), None) => write!(f, "{language}"),
            (None, _) => write!(
                f,
                "unknown (the component has no producers section naming it)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LEB128-prefixed string.
    fn name(out: &mut Vec<u8>, text: &str) {
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }

    /// A core module holding one `producers` section with `fields`.
    fn module_with_producers(fields: &[(&str, &[(&str, &str)])]) -> Vec<u8> {
        let mut section = Vec::new();
        name(&mut section, "producers");
        section.push(fields.len() as u8);
        for (field, values) in fields {
            name(&mut section, field);
            section.push(values.len() as u8);
            for (value, version) in *values {
                name(&mut section, value);
                name(&mut section, version);
            }
        }
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.push(0);
        module.push(section.len() as u8);
        module.extend(section);
        module
    }

    #[test]
    fn a_module_without_producers_is_unknown() {
        let toolchain = toolchain(b"\0asm\x01\0\0\0");
        assert_eq!(toolchain, Toolchain::default());
        assert!(toolchain.to_string().starts_with("unknown"));
    }

    #[test]
    fn the_language_and_its_tool_are_named() {
        let module = module_with_producers(&[
            ("language", &[("Python", "")]),
            ("processed-by", &[("componentize-py", "0.25.1")]),
        ]);
        let toolchain = toolchain(&module);
        assert_eq!(toolchain.to_string(), "Python (componentize-py 0.25.1)");
        assert_eq!(toolchain.processed_by, ["componentize-py 0.25.1"]);
        let module = module_with_producers(&[
            ("language", &[("Rust", "")]),
            (
                "processed-by",
                &[("rustc", "1.95.0 (59807616e 2026-04-14)")],
            ),
        ]);
        assert_eq!(toolchain_of(&module), "Rust (rustc 1.95.0)");
        let module = module_with_producers(&[("language", &[("C11", "")])]);
        assert_eq!(toolchain_of(&module), "C");
    }

    fn toolchain_of(bytes: &[u8]) -> String {
        toolchain(bytes).to_string()
    }
}
