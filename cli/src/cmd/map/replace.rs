//! GNU parallel's replacement strings in a command's arguments, and the input appended
//! when there are none.

/// The replacement strings of `peer map`, as GNU parallel has them.
pub(super) const REPLACEMENTS: [&str; 6] = ["{}", "{.}", "{/}", "{//}", "{/.}", "{#}"];

/// The command for one input: each replacement string in each argument replaced (`seq` is
/// `{#}`, from 1), or, when no argument has one, the input appended as the last argument.
pub(super) fn expand(command: &[String], input: &str, seq: usize) -> Vec<String> {
    let any = command
        .iter()
        .any(|arg| REPLACEMENTS.iter().any(|r| arg.contains(r)));
    if !any {
        let mut argv = command.to_vec();
        argv.push(input.to_string());
        return argv;
    }
    command
        .iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            while let Some(at) = rest.find('{') {
                out.push_str(&rest[..at]);
                rest = &rest[at..];
                let Some(r) = REPLACEMENTS.iter().find(|r| rest.starts_with(**r)) else {
                    out.push('{');
                    rest = &rest[1..];
                    continue;
                };
                match *r {
                    "{}" => out.push_str(input),
                    "{.}" => out.push_str(without_extension(input)),
                    "{/}" => out.push_str(basename(input)),
                    "{//}" => out.push_str(dirname(input)),
                    "{/.}" => out.push_str(without_extension(basename(input))),
                    _ => out.push_str(&seq.to_string()),
                }
                rest = &rest[r.len()..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// GNU parallel's `{.}`: the last `.` and what follows removed, if that is not empty and
/// has no `/` (`s:\.[^/.]+$::`).
pub(super) fn without_extension(path: &str) -> &str {
    match path.rfind('.') {
        Some(dot) if dot + 1 < path.len() && !path[dot + 1..].contains('/') => &path[..dot],
        _ => path,
    }
}

/// GNU parallel's `{/}`: what follows the last `/`.
pub(super) fn basename(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, base)| base)
}

/// GNU parallel's `{//}` (Perl's `dirname`): what precedes the last `/` (trailing ones
/// ignored), `.` without one, `/` for the root.
pub(super) fn dirname(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "." } else { "/" };
    }
    match trimmed.rfind('/') {
        None => ".",
        Some(slash) => match trimmed[..slash].trim_end_matches('/') {
            "" => "/",
            dir => dir,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn replacement_strings_are_gnu_parallels() {
        let command = words(&[
            "x{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{", "{x}", "}{}{",
        ]);
        assert_eq!(
            expand(&command, "dir/sub/file.tar.gz", 7),
            words(&[
                "xdir/sub/file.tar.gz",
                "dir/sub/file.tar",
                "file.tar.gz",
                "dir/sub",
                "file.tar",
                "7",
                "{",
                "{x}",
                "}dir/sub/file.tar.gz{",
            ])
        );
        // No replacement string: the input is the last argument.
        assert_eq!(
            expand(&words(&["gzip", "-9"]), "a b.txt", 1),
            words(&["gzip", "-9", "a b.txt"])
        );
        // One is enough for none to be appended.
        assert_eq!(
            expand(&words(&["echo", "{#}"]), "a", 3),
            words(&["echo", "3"])
        );
        // A replaced input is not scanned again.
        assert_eq!(expand(&words(&["{}"]), "{.}", 1), words(&["{.}"]));
    }

    #[test]
    fn paths_split_as_gnu_parallel_splits_them() {
        for (path, no_ext, base, dir) in [
            ("file.txt", "file", "file.txt", "."),
            ("file", "file", "file", "."),
            ("/file.txt", "/file", "file.txt", "/"),
            ("a.b/c", "a.b/c", "c", "a.b"),
            ("a/b.", "a/b.", "b.", "a"),
            ("a//b", "a//b", "b", "a"),
            ("dir/", "dir/", "", "."),
            (".bashrc", "", ".bashrc", "."),
            ("", "", "", "."),
            ("/", "/", "", "/"),
        ] {
            assert_eq!(without_extension(path), no_ext, "{{.}} of {path:?}");
            assert_eq!(basename(path), base, "{{/}} of {path:?}");
            assert_eq!(dirname(path), dir, "{{//}} of {path:?}");
        }
    }
}
