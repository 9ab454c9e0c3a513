throw new Error("nope")
