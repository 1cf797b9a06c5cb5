"""Data: the patient model, readers/writers for EMIDEC, nnU-Net raw and PNG layouts, phantom, preprocessing."""
