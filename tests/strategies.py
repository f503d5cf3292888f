"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

dataset_sizes = st.integers(min_value=1, max_value=200)
batch_sizes = st.integers(min_value=1, max_value=40)
seeds = st.integers(min_value=0, max_value=2**63 - 1)
epochs = st.integers(min_value=0, max_value=1000)

# SharedList items: every kind it holds, text with lone surrogates (os.fsdecode's undecodable
# bytes) and both float zeros; NaN is tested apart since NaN != NaN in list equality too.
shared_scalars = {
    str: st.text(st.characters(exclude_categories=()), max_size=12),
    bytes: st.binary(max_size=12),
    int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    float: st.floats(allow_nan=False),
    bool: st.booleans(),
}


@st.composite
def shared_list_items(draw: st.DrawFn) -> list[object]:
    """A list SharedList accepts: all one kind, or all tuples of one field-type signature."""
    if draw(st.booleans()):
        kind = draw(st.sampled_from(sorted(shared_scalars, key=lambda t: t.__name__)))
        return draw(st.lists(shared_scalars[kind], max_size=40))
    kinds = draw(
        st.lists(st.sampled_from(sorted(shared_scalars, key=lambda t: t.__name__)), max_size=4)
    )
    return draw(st.lists(st.tuples(*(shared_scalars[k] for k in kinds)), max_size=40))
