//! A small command-line parser: options with values (`-m FILE`, `--model FILE`,
//! `--model=FILE`), switches, positionals, and errors for anything left over.

use bitnet::{Error, Result};

pub struct Args {
    items: Vec<Option<String>>,
}

impl Args {
    pub fn new(items: Vec<String>) -> Args {
        Args {
            items: items.into_iter().map(Some).collect(),
        }
    }

    /// True if any of `names` (e.g. `["-h", "--help"]`) is present; consumes it.
    pub fn switch(&mut self, names: &[&str]) -> bool {
        let mut found = false;
        for it in self.items.iter_mut() {
            if it.as_deref().is_some_and(|s| names.contains(&s)) {
                *it = None;
                found = true;
            }
        }
        found
    }

    /// The value of an option; the last occurrence wins.
    pub fn value(&mut self, names: &[&str]) -> Result<Option<String>> {
        let mut out = None;
        let mut i = 0;
        while i < self.items.len() {
            if let Some(s) = self.items[i].clone() {
                if names.contains(&s.as_str()) {
                    self.items[i] = None;
                    let v = self.items.get_mut(i + 1).and_then(|v| v.take());
                    out = Some(v.ok_or_else(|| {
                        Error::invalid_argument(format!("option {s} needs a value"))
                    })?);
                    i += 1;
                } else if let Some((k, v)) = s.split_once('=') {
                    if names.contains(&k) {
                        self.items[i] = None;
                        out = Some(v.to_string());
                    }
                }
            }
            i += 1;
        }
        Ok(out)
    }

    /// A parsed option value, or `default` when absent.
    pub fn parse<T: std::str::FromStr>(&mut self, names: &[&str], default: T) -> Result<T> {
        match self.value(names)? {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                Error::invalid_argument(format!(
                    "option {}: cannot parse {v:?}",
                    names[names.len() - 1]
                ))
            }),
        }
    }

    /// Remaining positionals; errors on any leftover option.
    pub fn positionals(&mut self) -> Result<Vec<String>> {
        let rest: Vec<String> = self.items.iter_mut().filter_map(|x| x.take()).collect();
        if let Some(bad) = rest.iter().find(|s| s.starts_with('-') && s.len() > 1) {
            return Err(Error::invalid_argument(format!(
                "unknown option {bad} (see --help)"
            )));
        }
        Ok(rest)
    }
}
