//! Docs that cannot drift: each test reads a documentation file and a list the server itself
//! holds (never a copy made for the test), and fails when something the server has is missing
//! from the docs: a notification type, an error code, a setting, a command, an API operation.

use clap::CommandFactory;
use kakehashi::cli::{Cli, ServeArgs};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every Markdown file of the documentation: README.md and docs/*.md.
fn all_docs() -> Vec<(String, String)> {
    let mut files = vec![("README.md".to_owned(), read("README.md"))];
    let dir = format!("{}/docs", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    for n in names {
        let path = format!("docs/{n}");
        files.push((path.clone(), read(&path)));
    }
    files
}

/// The text of the section under `heading` (a whole heading line, e.g. "## Event types"),
/// up to the next heading of the same or a higher level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let level = heading.split(' ').next().unwrap();
    let start = text
        .lines()
        .position(|l| l == heading)
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    let lines: Vec<&str> = text.lines().collect();
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            hashes > 0 && hashes <= level.len() && l[hashes..].starts_with(' ')
        })
        .map(|i| start + 1 + i)
        .unwrap_or(lines.len());
    let from = lines[..start].iter().map(|l| l.len() + 1).sum::<usize>();
    let to = lines[..end].iter().map(|l| l.len() + 1).sum::<usize>();
    &text[from..to.min(text.len())]
}

/// Rows of the Markdown tables in `text`.
fn table_rows(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .collect()
}

/// The cells of a table row, trimmed.
fn cells(row: &str) -> Vec<&str> {
    row.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

/// The `code` spans in a piece of Markdown.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_notification_type_is_in_the_notifications_table() {
    let doc = read("docs/notifications.md");
    let table = section(&doc, "## Event types");
    let rows = table_rows(table);
    let mut missing = Vec::new();
    for kind in kakehashi::notify::events::ALL {
        let documented = rows.iter().any(|r| code_spans(cells(r)[0]).contains(kind));
        if !documented {
            missing.push(*kind);
        }
    }
    assert!(
        missing.is_empty(),
        "notification types the server sends but docs/notifications.md's \"Event types\" table \
         does not list: {missing:?}"
    );
    // And the other way round: the table lists no type the server never sends.
    for r in &rows {
        for kind in code_spans(cells(r)[0]) {
            assert!(
                kakehashi::notify::events::ALL.contains(&kind),
                "docs/notifications.md lists {kind:?}, which the server never sends"
            );
        }
    }
}

#[test]
fn every_error_code_is_in_an_error_table_with_its_status() {
    let docs = all_docs();
    let rows: Vec<&str> = docs.iter().flat_map(|(_, t)| table_rows(t)).collect();
    let mut missing = Vec::new();
    for reason in kakehashi::error::Reason::ALL {
        let code = reason.code();
        let status = kakehashi::error::http_status(*reason).as_u16().to_string();
        let documented = rows.iter().any(|r| {
            let cells = cells(r);
            cells.iter().any(|c| code_spans(c).contains(&code)) && cells.contains(&status.as_str())
        });
        if !documented {
            missing.push(format!("{code} ({status})"));
        }
    }
    assert!(
        missing.is_empty(),
        "error codes without a row in a docs error table that also gives their HTTP status: \
         {missing:?}"
    );
}

/// Every environment variable any command reads, from clap's own command tree.
fn env_vars(cmd: &clap::Command, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        if let Some(var) = arg.get_env() {
            out.push(var.to_string_lossy().into_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        env_vars(sub, out);
    }
}

#[test]
fn every_setting_is_in_the_readme_configuration_table() {
    let readme = read("README.md");
    let rows = table_rows(section(&readme, "## Configuration"));
    let documented: Vec<&str> = rows.iter().flat_map(|r| code_spans(cells(r)[0])).collect();
    let mut vars = Vec::new();
    env_vars(&Cli::command(), &mut vars);
    vars.sort();
    vars.dedup();
    assert!(vars.len() >= 15, "found the settings: {vars:?}");
    let missing: Vec<&String> = vars
        .iter()
        .filter(|v| !documented.contains(&v.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "environment variables read by the server but missing from README.md's configuration \
         table: {missing:?}"
    );
}

/// Every command path (`merchant add`, `serve`, ...) that has no subcommands of its own.
fn command_paths(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let path = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            command_paths(sub, &format!("{path} "), out);
        } else {
            out.push(path);
        }
    }
}

/// Whether `text` holds `kakehashi <path>` as a whole command (not a prefix of a longer one).
fn mentions_command(text: &str, path: &str) -> bool {
    let needle = format!("kakehashi {path}");
    text.match_indices(&needle).any(|(at, _)| {
        text[at + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    })
}

#[test]
fn every_command_is_in_the_docs() {
    let docs = all_docs();
    let mut paths = Vec::new();
    command_paths(&Cli::command(), "", &mut paths);
    assert!(paths.len() >= 20, "found the commands: {paths:?}");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !docs.iter().any(|(_, text)| mentions_command(text, p)))
        .collect();
    assert!(
        missing.is_empty(),
        "commands never shown as `kakehashi <command>` in README.md or docs/: {missing:?}"
    );
}

#[test]
fn every_api_operation_is_in_api_md_with_its_status() {
    use utoipa::OpenApi;
    let api = read("docs/api.md");
    let rows = table_rows(section(&api, "## Operations"));
    let doc = serde_json::to_value(kakehashi::api::openapi::ApiDoc::openapi()).unwrap();
    let mut count = 0;
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op.get("responses").and_then(|r| r.as_object()) else {
                continue; // path-level parameters, not an operation
            };
            count += 1;
            let operation = format!("{} {path}", method.to_uppercase());
            let success: Vec<&str> = responses
                .keys()
                .map(String::as_str)
                .filter(|s| s.starts_with('2'))
                .collect();
            let documented = rows.iter().any(|r| {
                let cells = cells(r);
                cells
                    .iter()
                    .any(|c| code_spans(c).contains(&operation.as_str()))
                    && success.iter().all(|s| cells.contains(s))
            });
            if !documented {
                missing.push(format!("{operation} ({})", success.join(", ")));
            }
        }
    }
    assert!(count >= 14, "found the operations");
    assert!(
        missing.is_empty(),
        "OpenAPI operations without a row (with their success status) in docs/api.md's \
         \"Operations\" table: {missing:?}"
    );
}

/// The flags `serve` owns, by id.
fn serve_flags() -> Vec<String> {
    let cmd = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    cmd.get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

#[test]
fn merchant_commands_show_only_their_own_flags() {
    let mut cli = Cli::command();
    cli.build();
    let serve = serve_flags();
    assert!(serve.iter().any(|f| f == "addr") && serve.iter().any(|f| f == "hsts"));
    let merchant = cli.find_subcommand("merchant").unwrap();
    for sub in merchant.get_subcommands() {
        let leaked: Vec<String> = sub
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| serve.contains(id))
            .collect();
        assert!(
            leaked.is_empty(),
            "`merchant {}` lists server flags: {leaked:?}",
            sub.get_name()
        );
        let help = sub.clone().render_help().to_string();
        assert!(
            !help.contains("--addr") && !help.contains("--themes-dir"),
            "{help}"
        );
    }
    // Every other command too: server settings belong to `serve` alone.
    for sub in cli.get_subcommands().filter(|s| s.get_name() != "serve") {
        for leaf in std::iter::once(sub).chain(sub.get_subcommands()) {
            assert!(
                !leaf
                    .get_arguments()
                    .any(|a| serve.contains(&a.get_id().to_string())),
                "`{}` lists server flags",
                leaf.get_name()
            );
        }
    }
    let serve_cmd = cli.find_subcommand("serve").unwrap();
    for flag in &serve {
        assert!(
            serve_cmd
                .get_arguments()
                .any(|a| a.get_id() == flag.as_str()),
            "serve has --{flag}"
        );
    }
}
