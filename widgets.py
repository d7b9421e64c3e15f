"""Shared Streamlit helpers for app.py and the pages: workspace access, data-set choice, item cards.

Pages never import each other; whatever two pages need lives here. Business logic does not:
these helpers only open things, remember choices and draw; every number comes from `mmrec_core`.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from mmrec_core.config import (
    CHOICES,
    ENGINE_FIELDS,
    SAMPLE_DATASET,
    Settings,
    env_overrides,
    load_settings,
    save_settings,
)
from mmrec_core.core import jobs
from mmrec_core.core.options import options
from mmrec_core.data.ingest import IngestError, ensure_sample_dataset
from mmrec_core.grounding import Grounding
from mmrec_core.store.database import StoreError
from mmrec_core.store.images import BadImageError, ImageStore, thumbnail_jpeg
from mmrec_core.store.workspace import Workspace, open_workspace

# Session-state key of the sidebar's data-set selector; every page reads the choice from here.
DATASET_KEY = "dataset"


def _release(ws: Workspace) -> None:
    # Called by st.cache_resource.clear() (tests, or a cache eviction): frees the DuckDB file lock.
    ws.close()


@st.cache_resource(
    show_spinner="Opening the data folder (the first start also loads the bundled sample data set)…",
    on_release=_release,
)
def _open_workspace(data_dir: str) -> Workspace:
    """One workspace (one DuckDB connection) per data folder for the whole server process.

    Keyed by the folder so that two folders in one process (the tests) never share a connection.
    """
    ws = open_workspace(load_settings(data_dir))
    try:
        jobs.mark_interrupted(ws.store)  # 'running' rows left by an earlier server process that died
        ensure_sample_dataset(ws)
    except BaseException:
        # A failed ingest must not leave the connection (and the file lock) behind uncached.
        ws.close()
        raise
    return ws


def _leave_legacy_pages_mode() -> None:
    """Make sure app.py (navigation + sidebar) runs before any page.

    Streamlit quirk (1.67): because a folder named `pages/` sits next to app.py, the first run of
    a server process (and every AppTest run) takes the legacy pages-folder path until some run
    calls st.navigation. If that first run asks for a page other than the default (a browser tab
    reconnecting after a restart), Streamlit runs the page file alone: no sidebar, no selector,
    and legacy navigation for everyone until someone opens the default page. Switching the
    legacy mode off and rerunning sends the request through app.py. Renaming the folder would
    remove the need for this.
    """
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


# The optional shared password (SECURITY.md); unset or empty: no gate, as for a tool on one's own machine.
PASSWORD_ENV = "MMREC_APP_PASSWORD"
_SIGNED_IN = "_mmrec_signed_in"


def password_gate() -> None:
    """With MMREC_APP_PASSWORD set, ask for it before anything else is drawn or opened; without it, do nothing.

    The answer is remembered in this browser session only (a reload asks again). Compared in constant time;
    a wrong answer costs a second, which slows guessing from one session (SECURITY.md: use a long password).
    Legacy pages-folder mode is left alone here: its rerun, or a switch of it between two runs, would drop
    the form's submission (widget ids include the page). Its links may show beside the form until someone
    signs in; each of them runs a page whose get_workspace() asks for the password again.
    """
    expected = os.environ.get(PASSWORD_ENV, "")
    if not expected or st.session_state.get(_SIGNED_IN):
        return
    st.title("MMRec Studio")
    with st.form("password_gate", clear_on_submit=True):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if hmac.compare_digest(given.encode(), expected.encode()):
            st.session_state[_SIGNED_IN] = True
            st.rerun()
        time.sleep(1)
        st.error("Wrong password.")
    st.stop()


def get_workspace() -> Workspace:
    """The process-wide workspace; on a locked or unreadable data folder, one clear error and stop."""
    _leave_legacy_pages_mode()
    password_gate()  # app.py asks first; this covers a page file that Streamlit runs on its own
    try:
        data_dir = load_settings().data_dir.resolve()
        return _open_workspace(str(data_dir))
    except (StoreError, IngestError, ValueError) as exc:
        # StoreError: the DB is open in another process or too new; ValueError: bad settings.json.
        st.error(str(exc))
        st.stop()


def data_version(ws: Workspace, dataset: str) -> str:
    """A cache key for `st.cache_data` results of one data set.

    It names the data folder (two folders may hold a 'sample') and the ingest time, which changes
    whenever the data set is re-ingested, so cached query results never outlive the data.
    """
    info = ws.store.require_dataset(dataset)
    return f"{ws.settings.data_dir}|{dataset}|{info['ingested_at']}"


def dataset_selector(ws: Workspace) -> str:
    """The sidebar's data-set picker (default 'sample'); the choice lives in st.session_state."""
    names = ws.store.datasets()["dataset"].tolist()
    if not names:
        st.info("No data set loaded yet. Load one with `mmrec ingest`.")
        st.stop()
    if st.session_state.get(DATASET_KEY) not in names:
        # Remembered choice was deleted (or came from another data folder): fall back to the default.
        st.session_state.pop(DATASET_KEY, None)
    default = names.index(SAMPLE_DATASET) if SAMPLE_DATASET in names else 0
    return st.selectbox("Data set", names, index=default, key=DATASET_KEY)


def current_dataset() -> str:
    """The data set chosen in the sidebar (app.py draws the selector before any page runs)."""
    return st.session_state.get(DATASET_KEY) or SAMPLE_DATASET


def _save_engine_settings(ws: Workspace, editable: list[str]) -> None:
    # A form callback: runs before the next script run, so the sidebar it draws already shows the change.
    values = {name: st.session_state[f"setting_{name}"] for name in editable}
    changes = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
    changes = {k: v for k, v in changes.items() if v != getattr(ws.settings, k)}
    if changes:
        ws.settings = save_settings(ws.settings, **changes)  # models of the new settings load on first use


def engine_panel(ws: Workspace) -> None:
    """The engine settings: a one-line summary, and a form that saves them to the data folder's settings.json.

    Settings fixed by MMREC_* environment variables win over the file, so their inputs are disabled.
    """
    s = ws.settings
    st.markdown(f"**Engine**: `{s.engine}`" + (f" · `{s.llm or s.vlm}`" if s.engine == "hf" else ""))
    fixed = set(env_overrides())
    with st.expander("Engine settings"), st.form("engine_settings"):
        for name in ENGINE_FIELDS:
            help_text = Settings.__dataclass_fields__[name].metadata["help"]
            if name in fixed:
                help_text += f" Fixed by the environment variable MMREC_{name.upper()}."
            label, current = name.replace("_", " ").capitalize(), getattr(s, name)
            common = {"help": help_text, "disabled": name in fixed, "key": f"setting_{name}"}
            st.session_state[common["key"]] = current  # show the saved value, not a stale edit
            if name in CHOICES:
                st.selectbox(label, CHOICES[name], **common)
            elif isinstance(current, int):
                st.number_input(label, min_value=1, **common)
            else:
                st.text_input(label, **common)
        editable = [name for name in ENGINE_FIELDS if name not in fixed]
        st.form_submit_button("Save", on_click=_save_engine_settings, args=(ws, editable))
    st.caption(f"Data folder: `{Path(s.data_dir)}`")


def item_thumbnail(images: ImageStore, item: Mapping[str, Any], caption: str | None = None) -> None:
    """One item's image with its title (or a short note if the image file has gone missing)."""
    title = caption if caption is not None else str(item.get("title") or item["item_id"])
    sha, ext = item.get("image_sha256"), item.get("ext")
    path = images.path(sha, ext) if sha and ext else None
    if path is not None and path.is_file():
        try:
            st.image(_thumbnail_bytes(str(path)), caption=title, width="stretch")
        except BadImageError as exc:
            st.caption(f"{title} (image not shown: {exc})")
    else:
        st.caption(f"{title} (no image)")


@st.cache_data(max_entries=4096, show_spinner=False)
def _thumbnail_bytes(path: str, side: int = 512) -> bytes:
    """A stored image reduced to a thumbnail (JPEG): st.image would decode a large file whole on every render.
    Stored files are content-addressed, so the path alone keys the cache."""
    return thumbnail_jpeg(path, side)


def thumbnail_row(images: ImageStore, items: pd.DataFrame, per_row: int = 8) -> None:
    """Items side by side, `per_row` to a row; captions add the purchase count when it is known."""
    records = items.to_dict(orient="records")
    for start in range(0, len(records), per_row):
        for col, item in zip(st.columns(per_row), records[start : start + per_row], strict=False):
            with col:
                bought = f" · {item['interactions']}×" if "interactions" in item else ""
                item_thumbnail(images, item, caption=f"{item.get('title') or item['item_id']}{bought}")


def item_card(images: ImageStore, item: Mapping[str, Any], max_keywords: int = 6) -> None:
    """An item's thumbnail and title, with its first keywords underneath (when it has been textualized)."""
    item_thumbnail(images, item)
    keywords = list(item.get("keywords") or [])[:max_keywords]
    if keywords:
        st.caption(" · ".join(keywords))


def job_status(job: Mapping[str, Any] | None) -> None:
    """A background job from `mmrec_core.jobs`: a progress bar while it runs, then its result or error."""
    if job is None:
        return
    if job["status"] == "running":
        done, total = job["done"], job["total"]  # total is None until the work's first report
        rate = job.get("items_per_s") or 0.0
        speed = f" · {rate:.2f} items/s" if rate else ""
        eta = f" · about {(total - done) / rate:.0f} s left" if rate and total else ""
        count = f"{done}/{total}" if total else f"{done}"
        text = f"{count}{speed}{eta} · {job['message'] or 'starting…'}"
        st.progress(min(done / total, 1.0) if total else 0.0, text=text)
    elif job["status"] == "done":
        st.success(f"{job['message']} (finished {job['updated_at']:%Y-%m-%d %H:%M})")
    elif job["status"] == "stopped":
        st.warning(job["message"])
    else:  # failed | interrupted
        st.error(f"Job {job['status']}: {job['error']}")


# How each kind of support reads on a page: unsupported claims stand out, supported ones are quietly tinted.
SUPPORT_STYLE = {"catalog": ":blue[{}]", "image": ":violet[{}]", "unsupported": ":red-background[{}]"}


def _escaped(text: str) -> str:
    """Plain text inside markdown: no emphasis, links, HTML or colour directives of its own."""
    return re.sub(r"([\\`*_\[\]<>$~|])", r"\\\1", text).replace("\n", "  \n")


def marked_text(text: str, grounding: Grounding | None) -> None:
    """`text` with its claims marked by support, and a one-line tally (unsupported ones named)."""
    if grounding is None:
        st.write(text)
        return
    parts = []
    for run, claim in grounding.segments(text):
        parts.append(SUPPORT_STYLE[claim.support].format(_escaped(run)) if claim else _escaped(run))
    st.markdown("".join(parts))
    tally = {s: sum(c.support == s for c in grounding.claims) for s in SUPPORT_STYLE}
    missing = ", ".join(f"“{c.text}”" for c in grounding.unsupported)
    st.caption(
        f"{len(grounding.claims)} checkable claims: :blue[{tally['catalog']} from the catalog], "
        f":violet[{tally['image']} read from the image], :red-background[{tally['unsupported']} unsupported]"
        + (f" ({missing})" if missing else "")
    )


def item_text_version(version: Mapping[str, Any] | None, reference: str = "") -> None:
    """One stored textualization of an item: description (claims marked; the catalog's own text beside it
    where there is one), keywords by facet, and its three rewards as bars."""
    if version is None:
        st.info("Not textualized yet: press Regenerate or Textualize all.")
        return
    st.markdown(f"**Description** · `{version['engine']}` `{version['model']}` · {version['describe_prompt']}")
    written, own = st.columns(2) if reference else (st.container(), None)
    with written:
        marked_text(version["description"], version.get("grounding"))
    if own is not None:
        own.markdown("**The catalog's own description**")
        own.write(reference)
    facets = version["facets"] or {"keywords": version["keywords"]}
    st.markdown("**Keywords**  \n" + "  \n".join(f"*{f}*: {', '.join(k)}" for f, k in facets.items() if k))
    rewards = pd.DataFrame(
        {
            "reward": ["R_info", "R_recon", "R_len", "weighted"],
            "value": [version[c] for c in ("r_info", "r_recon", "r_len", "reward")],
        }
    )
    chart = px.bar(rewards, x="reward", y="value", title="Keyword rewards", height=260, text_auto=".2f")
    st.plotly_chart(chart.update_layout(margin={"t": 40, "b": 0}), width="stretch")


def live_job(store, kind: str, **params: Any) -> bool:
    """The newest `kind` job with these params; re-read every second while it runs, and the whole page
    redrawn once it ends (so new results show). Returns whether one is running (to disable start buttons)."""
    latest = jobs.latest_job(store, kind, **params)
    running = latest is not None and latest["status"] == "running"

    @st.fragment(run_every=1.0 if running else None)
    def panel() -> None:
        now = jobs.latest_job(store, kind, **params)
        if running and now["status"] != "running":
            st.rerun()
        job_status(now)

    panel()
    return running


def session_cached(key: tuple, build: Callable[[], Any]) -> Any:
    """`build()` once per browser session and `key` (e.g. data version + settings); rebuilt when the key changes."""
    cache = st.session_state.setdefault("_session_cache", {})
    if key not in cache:
        cache.clear()  # one entry at a time: these objects hold whole data sets
        cache[key] = build()
    return cache[key]


def option_widgets(
    config: Any,
    names: Sequence[str],
    key: str,
    choices: Mapping[str, Sequence[Any]] | None = None,
    container: Any = st,
) -> dict[str, Any]:
    """One form widget per option `names` of a config (class or instance: its values come first), with the
    field's help (`core.options`); returns {option name: value}. `choices` overrides an option's choices
    (a select box of what exists, e.g. adapters). Keys are `<key>_<option dest>`."""
    found = {o.name: o for o in options(config)}
    values: dict[str, Any] = {}
    for name in names:
        o = found[name]
        label, wkey = o.help.split(". ")[0].rstrip("."), f"{key}_{o.dest}"
        low, high, step = o.range or (None, None, None)
        allowed = (choices or {}).get(name, o.choices)
        if allowed is not None:
            allowed = list(allowed)
            index = allowed.index(o.default) if o.default in allowed else 0
            widget = container.radio if len(allowed) <= 4 else container.selectbox
            kwargs = {"horizontal": True} if widget is container.radio else {}
            values[name] = widget(label, allowed, index=index, key=wkey, help=o.help, **kwargs)
        elif o.kind is bool:
            values[name] = container.checkbox(label, o.default, key=wkey, help=o.help)
        elif o.kind is dict:
            container.markdown(f"**{label}**")
            values[name] = {
                k: container.slider(k, low, high, float(v), step, key=f"{wkey}_{k}", help=o.help)
                for k, v in o.default.items()
            }
        elif o.kind is float and step:
            values[name] = container.slider(label, low, high, float(o.default), step, key=wkey, help=o.help)
        elif o.kind is int and low is not None and high is not None and high - low <= 100:
            values[name] = container.slider(label, low, high, o.default, step or 1, key=wkey, help=o.help)
        elif o.kind in (int, float):
            fmt = "%.0e" if o.kind is float and 0 < abs(o.default) < 1e-3 else None
            kind = o.kind
            values[name] = container.number_input(
                label,
                None if low is None else kind(low),
                None if high is None else kind(high),
                kind(o.default),
                step=None if step is None else kind(step),
                format=fmt,
                key=wkey,
                help=o.help,
            )
        else:
            values[name] = container.text_input(label, o.default, key=wkey, help=o.help)
    return values
