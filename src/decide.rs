//! `flowgate eval` and `flowgate explain`: one request, from JSON or from flags.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};
use compiler::eval::{Request, describe, explain};
use runtime::Engine;
use serde_json::{Map, Value as Json, json};

use crate::exit;

#[derive(Args)]
pub(crate) struct DecideArgs {
    /// Policy directory (default: `policies/`).
    dir: Option<PathBuf>,
    /// The request as JSON, from a file or `-` for standard input.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["principal", "action"])]
    request: Option<PathBuf>,
    /// The caller's id.
    #[arg(long)]
    principal: Option<String>,
    /// The caller is a service account, not a user.
    #[arg(long)]
    service: bool,
    /// The caller's groups, comma-separated.
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// A principal attribute, `name=value` (value as JSON, else a string); repeatable.
    #[arg(long = "attr", value_name = "NAME=VALUE")]
    attrs: Vec<String>,
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    dag: Option<String>,
    #[arg(long)]
    host: Option<String>,
    /// A context attribute, `name=value`; `time=…` sets the request time.
    #[arg(long = "context", value_name = "NAME=VALUE")]
    context: Vec<String>,
    /// The clock when the request gives no `context.time` (default: now).
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Human,
}

fn request_json(args: &DecideArgs) -> anyhow::Result<Json> {
    if let Some(path) = &args.request {
        let mut text = String::new();
        if path.as_os_str() == "-" {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the request from standard input")?;
        } else {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        return serde_json::from_str(&text)
            .map_err(|error| anyhow!("the request is not JSON: {error}"));
    }
    let principal = args
        .principal
        .as_ref()
        .ok_or_else(|| anyhow!("give `--request FILE`, or `--principal` and `--action`"))?;
    let action = args
        .action
        .as_ref()
        .ok_or_else(|| anyhow!("`--action` is required with `--principal`"))?;
    let mut principal_json = Map::new();
    principal_json.insert(String::from("id"), json!(principal));
    principal_json.insert(
        String::from("kind"),
        json!(if args.service { "service" } else { "user" }),
    );
    principal_json.insert(String::from("groups"), json!(args.groups));
    for pair in &args.attrs {
        let (name, value) = assignment(pair)?;
        principal_json.insert(name, value);
    }
    let mut context = Map::new();
    for pair in &args.context {
        let (name, value) = assignment(pair)?;
        context.insert(name, value);
    }
    Ok(json!({
        "principal": principal_json,
        "action": action,
        "dag": args.dag,
        "host": args.host,
        "context": context,
    }))
}

/// `name=value`, the value read as JSON when it is JSON (`true`, `3`, `["a"]`), else text.
fn assignment(pair: &str) -> anyhow::Result<(String, Json)> {
    let (name, value) = pair
        .split_once('=')
        .ok_or_else(|| anyhow!("`{pair}` is not `name=value`"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Json::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

fn prepare(args: &DecideArgs) -> anyhow::Result<Result<(Engine, Request), u8>> {
    let now = crate::fmt::now(args.now.as_deref())?;
    let engine = match crate::load::engine(args.dir.as_deref(), now)? {
        Ok(engine) => engine,
        Err(code) => return Ok(Err(code)),
    };
    let json = request_json(args)?;
    match engine.request_from_json(&json, now) {
        Ok(request) => Ok(Ok((engine, request))),
        Err(error) => {
            eprintln!(
                "error: bad request at `{}`: {}",
                error.pointer, error.message
            );
            Ok(Err(exit::USAGE_OR_IO))
        }
    }
}

pub(crate) fn run_eval(args: &DecideArgs) -> anyhow::Result<u8> {
    let (engine, request) = match prepare(args)? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    let decision = engine.decide(&request);
    let answer = engine.answer(&request, &decision);
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        ),
        Format::Human => {
            println!("{}", answer.decision);
            for id in &answer.deciding {
                println!("  decided by {id}");
            }
            if let Some(reason) = &answer.reason {
                println!("  {reason}");
            }
        }
    }
    Ok(exit::CLEAN)
}

pub(crate) fn run_explain(args: &DecideArgs) -> anyhow::Result<u8> {
    let (engine, request) = match prepare(args)? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    let explanation = explain(engine.policy_set(), &request);
    let decision = engine.decide(&request);
    let answer = engine.answer(&request, &decision);
    let rules = engine.policy_set().rules();
    let near: Vec<Json> = explanation
        .near_misses
        .iter()
        .map(|miss| json!({ "rule": engine.rule_id(miss.rule), "reason": miss.reason }))
        .collect();
    if args.format == Format::Json {
        let mut value = serde_json::to_value(&answer).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert(String::from("near_misses"), Json::Array(near));
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(exit::CLEAN);
    }
    println!("{}", answer.decision);
    for index in &decision.deciding {
        let rule = rules.get(*index as usize);
        let location = rule
            .map(|rule| engine.sources().location(rule.span))
            .unwrap_or_default();
        let effect = rule.map_or("", |rule| rule.effect.keyword());
        println!("  {effect} `{}` ({location})", engine.rule_id(*index));
        for condition in rule
            .map(|rule| rule.conditions.as_slice())
            .unwrap_or_default()
        {
            println!(
                "    when {}",
                describe(engine.policy_set().schema(), condition)
            );
        }
    }
    if let Some(reason) = &answer.reason {
        println!("  {reason}");
    }
    if !answer.missing.is_empty() {
        println!("  missing: {}", answer.missing.join(", "));
    }
    if !explanation.near_misses.is_empty() {
        println!("nearest permits:");
        for miss in &explanation.near_misses {
            println!("  `{}`: {}", engine.rule_id(miss.rule), miss.reason);
        }
    }
    Ok(exit::CLEAN)
}
