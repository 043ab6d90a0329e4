//! One document model, two renderings: Markdown (charts as PNG links) and HTML (charts inline).

use std::fmt::Write as _;
use std::path::Path;

use super::charts::{self, Chart};
use super::{ChartFile, ReportFiles};
use crate::error::ReportError;

pub(crate) enum Block {
    Heading(u8, String),
    Paragraph(String),
    Table(Table),
    Chart(Chart),
    List(Vec<String>),
}

pub(crate) struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1a1a1a;margin:0;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:1.8em;margin:.4em 0}h2{font-size:1.35em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
p{line-height:1.5}
.table{overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;font-size:.88em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d0d0;padding:4px 8px;text-align:left;vertical-align:top;white-space:nowrap}
td:last-child{white-space:normal;min-width:10em}
th{background:#f0f0f0}tr:nth-child(even) td{background:#f8f8f8}
figure{margin:1.2em 0}figure svg{max-width:100%;height:auto;display:block;border:1px solid #e4e4e4}
figcaption{font-size:.9em;color:#555;margin-top:.3em}
li{margin:.2em 0}
";

pub(crate) fn write(blocks: &[Block], out_dir: &Path) -> Result<ReportFiles, ReportError> {
    let mut md = String::new();
    let mut html = String::new();
    let mut files: Vec<ChartFile> = Vec::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>ternbench report</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n"
    );
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(md, "{} {}\n", "#".repeat(usize::from(*level)), text);
                let _ = writeln!(
                    html,
                    "<h{level} id=\"{}\">{}</h{level}>",
                    anchor(text),
                    esc(text)
                );
            }
            Block::Paragraph(text) => {
                let _ = writeln!(md, "{text}\n");
                let _ = writeln!(html, "<p>{}</p>", esc(text));
            }
            Block::List(items) => {
                html.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(md, "- {item}");
                    let _ = writeln!(html, "<li>{}</li>", esc(item));
                }
                md.push('\n');
                html.push_str("</ul>\n");
            }
            Block::Table(table) => {
                md.push_str(&markdown_table(table));
                html.push_str(&html_table(table));
            }
            Block::Chart(chart) => {
                let stem = unique_stem(&chart.stem, &files);
                let svg_path = out_dir.join(format!("{stem}.svg"));
                let png_path = out_dir.join(format!("{stem}.png"));
                let svg = charts::draw(chart, &png_path)?;
                std::fs::write(&svg_path, &svg).map_err(|e| ReportError::io(&svg_path, e))?;
                let _ = writeln!(md, "![{}]({stem}.png)\n", chart.title);
                let _ = writeln!(
                    html,
                    "<figure>\n{}\n<figcaption>{} (<a href=\"{stem}.svg\">SVG</a>, \
                     <a href=\"{stem}.png\">PNG</a>)</figcaption>\n</figure>",
                    svg.trim(),
                    esc(&chart.title)
                );
                files.push(ChartFile {
                    title: chart.title.clone(),
                    svg: svg_path,
                    png: png_path,
                });
            }
        }
    }
    html.push_str("</main>\n</body>\n</html>\n");
    let markdown = out_dir.join("report.md");
    let html_path = out_dir.join("report.html");
    std::fs::write(&markdown, md).map_err(|e| ReportError::io(&markdown, e))?;
    std::fs::write(&html_path, html).map_err(|e| ReportError::io(&html_path, e))?;
    Ok(ReportFiles {
        markdown,
        html: html_path,
        charts: files,
    })
}

fn unique_stem(stem: &str, done: &[ChartFile]) -> String {
    let taken = |s: &str| {
        done.iter()
            .any(|f| f.svg.file_stem().and_then(|x| x.to_str()) == Some(s))
    };
    let mut candidate = stem.to_owned();
    let mut n = 2;
    while taken(&candidate) {
        candidate = format!("{stem}_{n}");
        n += 1;
    }
    candidate
}

fn markdown_table(t: &Table) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {} |",
        t.headers
            .iter()
            .map(|h| cell(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|{}", "---|".repeat(t.headers.len()));
    for row in &t.rows {
        let _ = writeln!(
            out,
            "| {} |",
            row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    out.push('\n');
    out
}

fn html_table(t: &Table) -> String {
    let mut out = String::from("<div class=\"table\"><table>\n<thead><tr>");
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for c in row {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

// Heading ids, so a section can be linked (`report.html#energy`).
fn anchor(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.join("-")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
