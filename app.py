"""MMRec Studio entry point: page config, the shared workspace and sidebar, and the navigation.

Run with `streamlit run app.py`. No business logic here: pages in pages/ call `mmrec_core`.
"""

import streamlit as st

from widgets import dataset_selector, engine_panel, get_workspace, password_gate

# An emoji favicon is drawn in the browser; a ":material/...:" one is fetched from fonts.gstatic.com.
st.set_page_config(page_title="MMRec Studio", page_icon="🛍️", layout="wide")

# With MMREC_APP_PASSWORD set, nothing below runs before the password is given (SECURITY.md).
password_gate()

# Opened once per process (st.cache_resource); a locked DB shows one error and stops here.
ws = get_workspace()

# One line per page; the first is the landing page.
pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/catalog.py", title="Catalog", icon=":material/photo_library:"),
    st.Page("pages/customers.py", title="Customers", icon=":material/person_search:"),
    st.Page("pages/item_graph.py", title="Item graph", icon=":material/hub:"),
    st.Page("pages/recommend.py", title="Recommend", icon=":material/recommend:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/leaderboard:"),
]
page = st.navigation(pages)

with st.sidebar:
    dataset_selector(ws)
    engine_panel(ws)

page.run()
