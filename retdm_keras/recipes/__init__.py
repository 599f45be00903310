"""Recipes: one YAML file holding everything needed to reproduce a zoo checkpoint.

A recipe names the data (source and split), the model (``RETDM`` arguments) and the training
schedule (the three stages of ``fit_stages``, optimiser, batch size, seed)::

    name: scene-features
    dataset: MULAN scene features, 6 labels
    data:
      format: arff                                  # folder_csv | arff | coco | yolo | tfds
      train: ${RETDM_DATA_DIR}/mulan/scene/scene-train.arff
      test: ${RETDM_DATA_DIR}/mulan/scene/scene-test.arff
      labels_xml: ${RETDM_DATA_DIR}/mulan/scene/scene.xml
      val_fraction: 0.1
    model: {backbone: mlp, embed_dim: 256, lam: 0.1, mu: 0.1}
    training: {epochs: [30, 10, 30], learning_rates: [0.01, 0.01, 0.001], batch_size: 32}

``training.freeze_backbone: true`` (image backbones) trains with the backbone frozen on
cached pooled features, ``training.feature_views`` (default 4) views per training image (the
plain one and 3 augmented) (see :mod:`retdm_keras.frozen_features`).

Paths are kept as written (so a published recipe is portable) and resolved only when data is
built: ``${NAME}`` is an environment variable (``${RETDM_DATA_DIR}`` is the data folder; the
Makefile sets it), ``~`` is the home folder, and relative paths are relative to the recipe
file.

The package, one module per idea:

* :mod:`~retdm_keras.recipes.schema`: the :class:`Recipe` dataclasses, validation with
  field-named errors;
* :mod:`~retdm_keras.recipes.recipe_files`: the YAML files, :func:`load_recipe` /
  :func:`save_recipe` / :func:`find_recipe`;
* :mod:`~retdm_keras.recipes.builtin`: the recipes shipped as package data
  (``retdm_keras/recipes/builtin/<name>.yaml``), taken by name (``load_recipe("scene")``);
* :mod:`~retdm_keras.recipes.paths`: ``${VAR}``, ``~`` and relative paths;
* :mod:`~retdm_keras.recipes.datasets`: :class:`TrainData` from a recipe or from plain
  arguments (the data formats and their fields are listed there);
* :mod:`~retdm_keras.recipes.run`: the model, the optimiser and :func:`train_recipe`, which
  trains, evaluates on the test split and writes a zoo entry (:mod:`retdm_keras.zoo`)::

    entry = train_recipe("scene-features", "runs/zoo/scene-features")   # then zoo.publish(entry)

The command line: ``retdm-keras train --recipe scene-features --out DIR`` (a built-in name or
a YAML file); ``retdm-keras tune --recipe ...`` writes the best ``lam``/``mu`` back as a
recipe file (:func:`save_recipe`).
"""

from retdm_keras.recipes.builtin import (
    builtin_recipe_names,
    builtin_recipe_path,
    builtin_recipes_dir,
)
from retdm_keras.recipes.datasets import (
    TrainData,
    arff_data,
    build_datasets,
    image_folder_data,
    split_off_validation,
)
from retdm_keras.recipes.errors import RecipeError, WeightsUnavailableError
from retdm_keras.recipes.paths import default_data_dir, expand_path
from retdm_keras.recipes.recipe_files import find_recipe, load_recipe, save_recipe
from retdm_keras.recipes.run import (
    build_model,
    make_optimizer,
    model_kwargs,
    optimizer_name,
    predict_with_labels,
    stage_learning_rates,
    train_recipe,
)
from retdm_keras.recipes.schema import (
    DATA_FORMATS,
    DataSpec,
    ModelSpec,
    Recipe,
    TrainingSpec,
)

__all__ = [
    "DATA_FORMATS",
    "DataSpec",
    "ModelSpec",
    "Recipe",
    "RecipeError",
    "TrainData",
    "TrainingSpec",
    "WeightsUnavailableError",
    "arff_data",
    "build_datasets",
    "build_model",
    "builtin_recipe_names",
    "builtin_recipe_path",
    "builtin_recipes_dir",
    "default_data_dir",
    "expand_path",
    "find_recipe",
    "image_folder_data",
    "load_recipe",
    "make_optimizer",
    "optimizer_name",
    "stage_learning_rates",
    "model_kwargs",
    "predict_with_labels",
    "save_recipe",
    "split_off_validation",
    "train_recipe",
]
