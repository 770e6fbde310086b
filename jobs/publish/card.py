"""The dataset card (``README.md``) of a published snapshot, rendered from its manifest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What each column of the published qa table means (the types come from jobs.tables).
COLUMN_DOCS = {
    "question_id": "sha1 of combo_id + question index; unique",
    "combo_id": 'the combination the question came from ("l1-" + doc_id for Level-1)',
    "level": "SynthLLM generation level, 1, 2 or 3 (see Levels)",
    "question": "the generated question",
    "answer": "chain-of-thought answer ending in \\boxed{...}",
    "final_answer": "normalised content of the last \\boxed{} in the answer (null if none)",
    "num_tokens": "completion tokens of the answer",
    "agreement": "share of the question's sampled answers equivalent to final_answer "
    "(1.0 with one sample; see Answer checking)",
    "num_samples": "answers sampled for the question (failed samples included)",
    "model": "model that wrote the answer",
    "prompt_version": "version of the answer prompt",
    "source_doc_ids": "doc_id of the corpus documents the question is grounded in (see Levels)",
    "snapshot": "corpus snapshot",
}


def _kv_lines(mapping: Mapping[str, Any]) -> list[str]:
    return [f"| {k} | {v} |" for k, v in mapping.items()]


def _schema_section(schema_types: Mapping[str, str]) -> list[str]:
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c}` | {t} | {COLUMN_DOCS.get(c, '')} |" for c, t in schema_types.items()]
    return lines


def _counts_section(manifest: Mapping[str, Any]) -> list[str]:
    lines = ["| stage output | rows |", "|---|---|"] + _kv_lines(manifest["row_counts"])
    tokens = manifest.get("tokens") or {}
    if any(tokens.values()):
        lines += ["", "| stage output | tokens |", "|---|---|"]
        lines += [
            f"| {s} | {', '.join(f'{k}: {v}' for k, v in t.items())} |"
            for s, t in tokens.items()
            if t
        ]
    return lines


# What each generation level is (SynthLLM section 1.2), and what its source_doc_ids hold.
LEVEL_DOCS = {
    "1": "questions extracted from, or inspired by, one reference document; "
    "`source_doc_ids` holds that document",
    "2": "questions combining 2-3 key concepts extracted from one document; "
    "`source_doc_ids` holds that document",
    "3": "questions combining concepts from different topics, sampled by weighted random walks "
    "on the global concept co-occurrence graph and grounded in the top-2 reference documents "
    "by Jaccard similarity of their concepts; `source_doc_ids` holds those documents",
}


def _levels_section(levels: Mapping[str, Mapping[str, int]]) -> list[str]:
    questions, qa = levels.get("questions") or {}, levels.get("qa") or {}
    keys = sorted(set(LEVEL_DOCS) | set(questions) | set(qa), key=int)
    lines = [
        "| level | what it is | questions generated | qa rows published |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {LEVEL_DOCS.get(k, 'unknown level')} | {questions.get(k, 0)} | {qa.get(k, 0)} |"
        for k in keys
    ]
    return [
        *lines,
        "",
        "`source_doc_ids` lead back to the corpus documents: they are `doc_id`s of the "
        "snapshot's `documents` table, which keeps each document's text and source.",
    ]


def answer_checking_line(checking: Mapping[str, Any] | None) -> str:
    """One sentence on how answers were checked (the ``answer_checking`` of the qa stats)."""
    if not checking:
        return "Answer checking: not recorded for this snapshot."
    k = checking.get("num_samples", "?")
    return (
        f"Answer checking: {k} sampled answer(s) per question; final answers compared for "
        f"equivalence with {checking.get('verifier', 'math-verify')} "
        f"({checking.get('verify_timeout_s', '?')} s per comparison, an overrun counts as "
        "different); the majority answer is kept with `agreement` = majority size / samples, "
        "failed samples included; questions below an agreement of "
        f"{checking.get('min_agreement', '?')} are quarantined (`low_agreement`)."
    )


def cleaning_lines(cleaning: Mapping[str, Any] | None) -> list[str]:
    """How questions were cleaned: decontamination sets, n-grams, duplicates (a bullet list)."""
    if not cleaning:
        return ["- Questions were not cleaned (no clean_questions output): no deduplication or "
                "decontamination is guaranteed."]  # fmt: skip
    sets = ", ".join(f"`{s['name']}` ({s['items']} items)" for s in cleaning["eval_sets"])
    earlier = ", ".join(cleaning["index_snapshots"]) or "none"
    return [
        f"- Decontaminated against: {sets or 'no evaluation set'}; a question sharing a word "
        f"{cleaning.get('ngram_n')}-gram with an item ({cleaning.get('short_ngram_n')}-gram "
        "when either is short) was removed.",
        "- Deduplicated within the snapshot (normalised exact match, then MinHash LSH at "
        f"Jaccard >= {cleaning.get('near_dup_jaccard')}) and against the questions already "
        f"published in other snapshots ({earlier}).",
        f"- Questions of {cleaning.get('min_chars')}-{cleaning.get('max_chars')} characters "
        "with mathematical content and no leftover prompt markup.",
    ]


def funnel_section(funnel: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """Per level and stage: in, out and removal reasons (markdown table)."""
    if not funnel:
        return ["Not recorded for this snapshot."]
    lines = ["| level | stage | in | out | removed (reason: count) |", "|---|---|---|---|---|"]
    for lvl, stages in funnel.items():
        for stage, row in stages.items():
            removed = ", ".join(f"{r}: {n}" for r, n in row.get("removed", {}).items()) or "–"
            lines.append(f"| {lvl} | {stage} | {row['in']} | {row['out']} | {removed} |")
    lines += ["", "`generate_questions` counts prompts in and questions out; the other stages "
              "count questions."]  # fmt: skip
    return lines


def graph_line(graph: Mapping[str, Any] | None) -> str:
    """One sentence on the concept graph behind Level-3, or that it was not built."""
    if not graph:
        return "Concept graph: not built for this snapshot."
    share = graph.get("largest_component_share")
    share_text = "unknown" if share is None else f"{share:.1%}"
    return (
        f"Concept graph: {graph.get('vertices', '?')} vertices (topics and key concepts), "
        f"{graph.get('edges', '?')} co-occurrence edges; the largest connected component "
        f"holds {share_text} of the vertices."
    )


def render_card(manifest: Mapping[str, Any], schema_types: Mapping[str, str]) -> str:
    """Markdown card: what the dataset is, how it was made, schema, counts, limitations."""
    snap = manifest["snapshot"]
    models = manifest.get("models", {})
    prompts = manifest.get("prompt_versions", {})
    licences = manifest.get("source_licences") or {}
    files = manifest["files"]
    all_models = sorted({m for names in models.values() for m in names})
    lines = [
        f"# SynthLLM synthetic math QA — snapshot {snap}",
        "",
        "Question–answer pairs generated from the documents of one corpus snapshot, following "
        "SynthLLM (Qin et al., 2025, arXiv 2503.19551): filter math reference documents, "
        "generate questions grounded in them at three levels (one document; key concepts of "
        "one document; concepts across topics of a concept graph), then answer each question "
        "with chain-of-thought ending in `\\boxed{}`.",
        "",
        "## How it was made",
        "",
        "ingest → filter (heuristics, near-duplicate removal, domain classifier) → validate "
        "documents → concept extraction → validate concepts → concept co-occurrence graph → "
        "combinations (random walks) → question generation → validate questions → clean "
        "questions (deduplication, decontamination, format rules) → validate clean questions → "
        "answer generation with k-sample agreement → validate qa "
        "→ report → publish. Rejected rows are kept in quarantine with a reason. Every row traces "
        "back: `question_id → combo_id → source_doc_ids → corpus snapshot`.",
        "",
        f"- question model(s): {', '.join(models.get('questions', [])) or 'unknown'}; "
        f"prompt version(s): {', '.join(prompts.get('questions', [])) or 'unknown'}",
        f"- answer model(s): {', '.join(models.get('answers', [])) or 'unknown'}; "
        f"prompt version(s): {', '.join(prompts.get('answers', [])) or 'unknown'}",
        f"- {answer_checking_line(manifest.get('answer_checking'))}",
        *cleaning_lines(manifest.get("cleaning")),
        f"- code version: `{manifest['code_version']}`; run id: "
        f"`{manifest['created_from']['run_id']}`",
        "",
        "## Levels",
        "",
        *_levels_section(manifest.get("levels") or {}),
        "",
        graph_line(manifest.get("graph")),
        "",
        "### Questions per level and stage",
        "",
        *funnel_section(manifest.get("funnel")),
        "",
        "## Files",
        "",
        "| file | rows | bytes | sha256 |",
        "|---|---|---|---|",
        *[f"| `{n}` | {f['rows']} | {f['bytes']} | `{f['sha256']}` |" for n, f in files.items()],
        "",
        "## Schema (`qa`)",
        "",
        *_schema_section(schema_types),
        "",
        "## Counts",
        "",
        *_counts_section(manifest),
        "",
        "## Limitations",
        "",
        f"- Generated by {', '.join(all_models) or 'an unrecorded model'}. The default local "
        "run uses SmolLM2-135M-Instruct, a 135M-parameter model, on CPU: many questions are "
        "vague and many answers are wrong. Such a run shows the pipeline works; it is not "
        "training-quality data.",
        "- Answers are not verified against ground truth; `agreement` only measures "
        "self-consistency of the sampled answers (always 1.0 with one sample).",
        "- A level with no rows in the Levels table was not generated in this run. Duplicates "
        "are caught by normalised text and word-shingle similarity, not by meaning; across "
        "snapshots only by normalised text.",
        "- Decontamination covers only the evaluation sets named above, by word n-gram overlap: "
        "a paraphrased benchmark question can pass.",
        "",
        "## Licence of sources",
        "",
        "Source documents by licence (documents behind the published questions):",
        "",
        "| licence | documents |",
        "|---|---|",
        *(_kv_lines(licences) or ["| unknown | — |"]),
        "",
        "Generated text inherits the terms of the source documents and of the generating "
        "model's licence; check both before redistribution.",
        "",
        "## Reports",
        "",
        f"- summary report: {manifest.get('report_uri', '')}",
        f"- Great Expectations Data Docs: {manifest.get('data_docs_uri', '')}",
        "",
    ]
    return "\n".join(lines)
