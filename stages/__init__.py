"""trkx.stages: the built-in stages. Importing this package registers them by their YAML name."""
from trkx.stages import embedding, filter, gnn, graph, labeling, module_map  # noqa: F401
