"""The SavedModel that TF Serving loads: the model's signatures as graph functions, and the versioned export."""
