"""Looking inside trained models (``trkx analyze``): the loss landscape of a learned stage as a
function of its flattened parameters (``params``), its Hessian spectrum (``hessian``), loss
surfaces along chosen directions (``surface``), paths between two solutions (``connect``) and the
similarity of two models' layers (``similarity``)."""
