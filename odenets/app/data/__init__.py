"""The data path: data sets and image folders, their tensor cache and batch augmentation."""
