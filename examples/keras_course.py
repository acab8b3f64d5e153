"""The Keras course's first CNN, as its notebook writes it, with `import keras` replaced by `import minicnn as keras`.

    python examples/keras_course.py [--data-dir DIR] [--epochs 10] [--limit N]

Everything below is the course's code in Keras 3 names (the notebook used Keras 2's `adamax(lr=...)` and
`predict_proba`); only the imports differ. One change of method: the notebook passed the test set as
`validation_data`, so it looked at the test set after every epoch; here the test set is read once, at the end.
"""

import argparse
import time

import numpy as np

import minicnn as keras  # instead of: import keras
from minicnn.layers import Activation, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPooling2D
from minicnn.models import Sequential

# -- the model ------------------------------------------------------------------------------------
NUM_CLASSES = 10


def make_model():
    """The course's network, as its notebook builds it (tests/test_keras_api.py trains it briefly)."""
    model = Sequential()
    model.add(Conv2D(filters=16, kernel_size=(3, 3), padding="same", input_shape=(32, 32, 3)))
    model.add(LeakyReLU(0.1))
    model.add(Conv2D(filters=32, kernel_size=(3, 3), padding="same"))
    model.add(LeakyReLU(0.1))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Conv2D(filters=32, kernel_size=(3, 3), padding="same"))
    model.add(LeakyReLU(0.1))
    model.add(Conv2D(filters=64, kernel_size=(3, 3), padding="same"))
    model.add(LeakyReLU(0.1))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(256))
    model.add(LeakyReLU(0.1))
    model.add(Dropout(0.5))
    model.add(Dense(NUM_CLASSES))
    model.add(Activation("softmax"))
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="where CIFAR-10 is (default: the usual places, else download)")
    parser.add_argument("--epochs", type=int, default=10, help="the course's 10 (default)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only (a quick look)")
    parser.add_argument("--out", default="keras_course.weights.h5", help="the weights file (default: %(default)s)")
    args = parser.parse_args(argv)

    # -- the data, as the course prepares it --------------------------------------------------------
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data(args.data_dir)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    x_train2 = (x_train / 255 - 0.5).astype(np.float32)
    x_test2 = (x_test / 255 - 0.5).astype(np.float32)
    y_train2 = keras.utils.to_categorical(y_train, NUM_CLASSES)

    keras.backend.clear_session()
    model = make_model()
    model.summary()

    # -- training, with the course's schedule and its learning-rate print-out -------------------------
    INIT_LR = 5e-3
    BATCH_SIZE = 32
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adamax(learning_rate=INIT_LR),
        metrics=["accuracy"],
    )

    def lr_scheduler(epoch):
        return INIT_LR * 0.9**epoch

    class LrHistory(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            print("Learning rate:", self.model.optimizer.learning_rate)

    start = time.perf_counter()
    model.fit(
        x_train2,
        y_train2,
        batch_size=BATCH_SIZE,
        epochs=args.epochs,
        callbacks=[keras.callbacks.LearningRateScheduler(lr_scheduler), LrHistory()],
        shuffle=True,
        verbose=2,
    )
    minutes = (time.perf_counter() - start) / 60
    model.save_weights(args.out)
    model.load_weights(args.out)

    # -- the test set, read once -----------------------------------------------------------------------
    y_pred_test = model.predict(x_test2)
    y_pred_test_classes = np.argmax(y_pred_test, axis=1)
    test_accuracy = float(np.mean(y_pred_test_classes == y_test[:, 0]))
    print(f"Test accuracy: {test_accuracy:.4f} after {args.epochs} epochs ({minutes:.1f} minutes of training)")


if __name__ == "__main__":
    main()
