//! Constrained output: `response_format` `json_object` (any JSON object) and llama-server's
//! `grammar` field (GBNF text) through the library's grammar sampler.

use bitnet::sampling::grammar::{GrammarSampler, GrammarVocab};
use bitnet::Model;
use std::sync::{Arc, OnceLock};

/// Any JSON object (RFC 8259), whitespace between tokens limited as llama.cpp's json grammar
/// does so a model cannot pad forever.
pub const JSON_OBJECT_GBNF: &str = r#"
root    ::= object
value   ::= object | array | string | number | ("true" | "false" | "null") ws
object  ::= "{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}" ws
array   ::= "[" ws ( value ( "," ws value )* )? "]" ws
string  ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\"" ws
number  ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]{1,3} )? ws
ws      ::= | " " | "\n" [ \t]{0,20}
"#;

/// The model's token table for grammars, built on first use (a 128k vocabulary takes a while).
pub struct Grammars {
    model: Arc<Model>,
    table: OnceLock<Arc<GrammarVocab>>,
}

impl Grammars {
    pub fn new(model: Arc<Model>) -> Grammars {
        Grammars {
            model,
            table: OnceLock::new(),
        }
    }

    fn table(&self) -> Result<Arc<GrammarVocab>, String> {
        if let Some(t) = self.table.get() {
            return Ok(t.clone());
        }
        let t = Arc::new(GrammarVocab::from_vocab(self.model.vocab()).map_err(|e| e.to_string())?);
        Ok(self.table.get_or_init(|| t).clone())
    }

    /// A sampler for GBNF `text` (root rule `root`); the error names what is wrong with it.
    pub fn sampler(&self, text: &str) -> Result<GrammarSampler, String> {
        GrammarSampler::with_table(
            self.table()?,
            self.model.vocab(),
            text,
            "root",
            false,
            &[],
            &[],
        )
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet::sampling::grammar::Grammar;

    #[test]
    fn json_object_grammar_accepts_objects_only() {
        let g = Grammar::parse(JSON_OBJECT_GBNF, "root").unwrap();
        assert!(g.accepts(r#"{"a": [1, -2.5e3, "x\n\u00e9"], "b": {"c": null, "d": true}}"#));
        assert!(g.accepts("{}"));
        assert!(!g.accepts("[1]"));
        assert!(!g.accepts(r#"{"a": 01}"#));
        assert!(!g.accepts(r#"{"a" 1}"#));
    }
}
