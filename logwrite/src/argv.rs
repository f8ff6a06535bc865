//! Splitting a command given in one flag (`-on-rotate CMD`,
//! `-remote exec:CMD`) into the program and its arguments, without a
//! shell: no variables, globs, redirections or pipes (write
//! `sh -c '...'` for those; that is the user's choice).
//!
//! The rules (README, "Hooks"):
//! - words are separated by spaces and tabs;
//! - `'...'` is literal (no escapes inside);
//! - `"..."` is literal but for `\"` and `\\`;
//! - outside quotes, `\` makes the next character literal;
//! - quotes join with what touches them: `a'b c'd` is one word `ab cd`,
//!   and `''` is an empty word.
//!
//! An unterminated quote, a trailing `\`, a NUL byte or an empty command is
//! an error.

/// `cmd` split into words (see the module documentation).
pub fn split(cmd: &str) -> Result<Vec<String>, String> {
    if cmd.contains('\0') {
        return Err("a command cannot hold a NUL byte".into());
    }
    let mut words = Vec::new();
    let mut cur = String::new();
    // A word is open (even if empty, after '' or "").
    let mut open = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if open {
                    words.push(std::mem::take(&mut cur));
                    open = false;
                }
            }
            '\'' => {
                open = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated ' in command {cmd:?}")),
                    }
                }
            }
            '"' => {
                open = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated \" in command {cmd:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated \" in command {cmd:?}")),
                    }
                }
            }
            '\\' => {
                open = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(format!("command {cmd:?} ends in a lone \\")),
                }
            }
            c => {
                open = true;
                cur.push(c);
            }
        }
    }
    if open {
        words.push(cur);
    }
    if words.first().map_or(true, |w| w.is_empty()) {
        return Err(format!("empty command {cmd:?}"));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<String> {
        split(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(ok("gzip -c"), ["gzip", "-c"]);
        assert_eq!(ok("  a \t b  "), ["a", "b"]);
        assert_eq!(
            ok("sh -c 'gzip -c > /tmp/x.gz'"),
            ["sh", "-c", "gzip -c > /tmp/x.gz"]
        );
        assert_eq!(ok(r#"echo "a \"b\" \\ \n""#), ["echo", r#"a "b" \ \n"#]);
        assert_eq!(ok(r"a\ b c"), ["a b", "c"]);
        assert_eq!(ok("a'b c'd"), ["ab cd"]);
        assert_eq!(ok("x '' \"\""), ["x", "", ""]);
        assert_eq!(ok("/usr/bin/up $HOME *"), ["/usr/bin/up", "$HOME", "*"]);
    }

    #[test]
    fn bad_commands() {
        for bad in ["", "   ", "'", "a 'b", "a \"b", "a\\", "''", "a\0b"] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }
}
